"""Vector stores behind one interface, chosen per index with ``picsearch index --store``:

- ``exact`` (:class:`NumpyStore`): every query scores every vector; the default;
- ``ann`` (:class:`FaissStore`): a FAISS inverted file, saved in the data folder;
- ``milvus`` (:class:`MilvusStore`): Milvus Lite in the index folder, or a Milvus server or cluster.

A store holds the visible photos only (see :mod:`picsearch.index.stores.base`). Each data folder records in
``held.npy`` which rows its store held when it was written; a reader brings the store in line with the
review log from there (:func:`reconcile`), a writer from what the store itself lists.
"""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path
from typing import Sequence

import numpy as np

from picsearch.index.stores.ann import FaissStore
from picsearch.index.stores.base import StoreSpec, StoreSpecError, VectorStore, parse_store, reconcile, vector_lookup
from picsearch.index.stores.exact import NumpyStore
from picsearch.index.stores.milvus import LITE_FILE, MilvusStore, MilvusStoreError, new_collection_name
from picsearch.storage import load_array, save_array

HELD_FILE = "held.npy"


def open_store(
    spec: StoreSpec, index_dir: Path, data_dir: Path | None, ids: Sequence[str], joint: np.ndarray
) -> tuple[VectorStore, np.ndarray]:
    """The store an index's data folder was written with, and the rows (bool mask) it held then.

    Without a data folder, or for an exact index written before ``held.npy`` existed, that is an empty
    exact store (the reader fills it)."""
    if data_dir is None or (spec.kind == "exact" and not (data_dir / HELD_FILE).is_file()):
        return NumpyStore.empty(joint.shape[1], str(joint.dtype)), np.zeros(len(ids), dtype=bool)
    held = load_array(data_dir / HELD_FILE)
    if len(held) != len(ids):
        raise ValueError(f"{data_dir / HELD_FILE}: {len(held)} rows for {len(ids)} ids; rebuild the index")
    ids = np.asarray(ids, dtype=str)
    if spec.kind == "ann":
        return FaissStore.load(data_dir, ids, joint), held
    if spec.kind == "milvus":
        return MilvusStore(milvus_uri(spec, index_dir), spec.collection, joint.shape[1]), held
    return NumpyStore(ids[held], np.asarray(joint[held])), held


def write_store(
    spec: StoreSpec, index_dir: Path, data_dir: Path, ids: Sequence[str], joint: np.ndarray, visible: np.ndarray,
    previous: tuple[StoreSpec, Path] | None = None, changed: Sequence[str] = (), rescored: bool = False,
) -> StoreSpec:
    """Fill the store of a new data folder with the ``visible`` rows; returns the spec to record.

    ``previous`` (its spec and data folder) is reused when it is of the same kind: an ANN index is updated
    in place of a rebuild unless the gallery outgrew its cells, a Milvus collection is brought in line with
    what it lists (so a sync cut short is finished here). ``changed`` ids get their vectors re-inserted;
    ``rescored`` (a new model: every vector changed, maybe its length too) starts a fresh store.
    """
    ids = np.asarray(ids, dtype=str)
    want = ids[visible].tolist()
    vectors_of = vector_lookup({image_id: row for row, image_id in enumerate(ids.tolist())}, joint)
    same = previous is not None and previous[0].kind == spec.kind and not rescored
    if spec.kind == "ann":
        store = FaissStore.load(previous[1], ids, joint) if same and (previous[1] / HELD_FILE).is_file() else None
        if store is None or store.outgrown(len(want)):
            store = FaissStore(ids, joint).fit(want)
        else:
            reconcile(store, want, vectors_of, changed=changed)
        store.save(data_dir)
    elif spec.kind == "milvus":
        reuse = same and previous[0].uri == spec.uri and previous[0].collection
        spec = replace(spec, collection=previous[0].collection if reuse else spec.collection or new_collection_name())
        store = MilvusStore(milvus_uri(spec, index_dir), spec.collection, joint.shape[1])
        reconcile(store, want, vectors_of, changed=changed)
        store.save(data_dir)
    save_array(data_dir / HELD_FILE, np.asarray(visible, dtype=bool))
    return spec


def retire(old: StoreSpec, new: StoreSpec, index_dir: Path) -> None:
    """Drop a Milvus collection an index no longer uses (after the manifest naming the new one is in place)."""
    if old.kind == "milvus" and old.collection and (old.uri, old.collection) != (new.uri, new.collection):
        try:
            MilvusStore(milvus_uri(old, index_dir), old.collection, 0, create=False).drop()
        except MilvusStoreError:
            pass  # unreachable or already gone: nothing of this index's is served from it any more


def milvus_uri(spec: StoreSpec, index_dir: Path) -> str:
    """The server a Milvus spec names, else the index folder's Milvus Lite file."""
    return spec.uri or str(Path(index_dir).resolve() / LITE_FILE)


__all__ = [
    "FaissStore", "MilvusStore", "MilvusStoreError", "NumpyStore", "StoreSpec", "StoreSpecError", "VectorStore",
    "open_store", "parse_store", "reconcile", "retire", "vector_lookup", "write_store",
]
