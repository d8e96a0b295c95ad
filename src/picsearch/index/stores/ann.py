"""The approximate store: a FAISS inverted-file index, re-scored exactly on the index's own vectors.

Vectors are assigned to ``nlist`` k-means cells and kept as 8-bit scalar codes (optionally after a PCA
to ``pca_dim`` dimensions, which saves memory but costs recall: see docs/deployment.md); a query visits the ``nprobe`` nearest cells. The ``refine`` best codes are
then re-scored exactly on the index's ``joint.npy`` rows (memory-mapped), so the order of what is
returned is the exact one and only the candidate set is approximate. The FAISS file holds no pickle.

Keys are the 64 bits of each photo's id (16 hex digits), so an update removes and adds photos without
renumbering the others.
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import Sequence

import numpy as np

from picsearch.storage import atomic_file, load_array, load_json, save_array, save_json

INDEX_FILE, KEYS_FILE, PARAMS_FILE = "ann.faiss", "ann.keys.npy", "ann.json"
TRAIN_PER_CELL = 64  # k-means sample per cell
MIN_CELL = 39  # FAISS's k-means wants at least this many points a cell
MAX_TRAIN = 200_000
# Candidates re-scored exactly; each costs a decode of its joint row's codes. In bench.search at 100k photos,
# 200 against 1000: retrieval 4.4 against 9.5 ms p50, the same recall against exact (0.999 @10, 0.996 @100).
REFINE = 200
MISSING = -1  # FAISS's label for an empty result slot (the id ffffffffffffffff, odds 2^-64, is never found)


def id_keys(ids: Sequence[str] | np.ndarray) -> np.ndarray:
    """int64 FAISS keys of 16-hex-digit photo ids (the same 64 bits, read as signed)."""
    return np.array([int(i, 16) for i in ids], dtype=np.uint64).view(np.int64)


class FaissStore:
    """Approximate nearest neighbours by inner product over ``vectors[rows of held ids]``.

    ``ids``/``vectors`` are every index row (the store holds a subset). ``nlist`` defaults to 4·√n
    cells (fewer for tiny galleries: one below 78 photos), ``nprobe`` to max(32, nlist / 16) (every
    cell of a gallery under ~16k photos), and ``refine`` candidates are re-scored exactly. Fitted:
    ``index_``, ``keys_`` (held), ``nlist_``, ``nprobe_``, ``trained_on_``.
    """

    kind = "ann"

    def __init__(
        self, ids: Sequence[str], vectors: np.ndarray, nlist: int | None = None, nprobe: int | None = None,
        pca_dim: int | None = None, refine: int = REFINE,
    ) -> None:
        self.all_ids = np.asarray(ids, dtype=str)
        self.vectors = vectors
        self.nlist, self.nprobe, self.pca_dim, self.refine = nlist, nprobe, pca_dim, refine
        order = np.argsort(all_keys := id_keys(self.all_ids))
        self._sorted_keys, self._rows_by_key = all_keys[order], order
        self.index_ = None
        self.keys_ = np.zeros(0, dtype=np.int64)
        self.nlist_, self.nprobe_, self.trained_on_ = 0, 0, 0

    def __len__(self) -> int:
        return len(self.keys_)

    @property
    def dim(self) -> int:
        return self.vectors.shape[1]

    def fit(self, held: Sequence[str]) -> "FaissStore":
        """Train the quantizers on the vectors of ``held`` (only those: hidden photos shape nothing) and insert them."""
        import faiss  # imported on use: only ann indexes need it

        keys = id_keys(held)
        self.index_, self.keys_ = None, np.zeros(0, dtype=np.int64)
        if not len(keys):
            return self
        n = self.trained_on_ = len(keys)
        self.nlist_ = self.nlist or max(1, min(round(4 * math.sqrt(n)), n // MIN_CELL))
        self.nprobe_ = min(self.nlist_, self.nprobe or max(32, self.nlist_ // 16))
        size = min(n, MAX_TRAIN, max(TRAIN_PER_CELL * self.nlist_, 4 * (self.pca_dim or 0)))
        sample = np.sort(self._rows(keys)[np.random.default_rng(0).permutation(n)[:size]])
        reduce = self.pca_dim is not None and self.dim > self.pca_dim and size >= 2 * self.pca_dim
        pca = f"PCA{self.pca_dim}," if reduce else ""
        # under MIN_CELL photos k-means has too few points for one cell: a flat (exact) index instead
        layout = f"{pca}IVF{self.nlist_},SQ8" if n >= MIN_CELL else "IDMap2,Flat"
        self.index_ = faiss.index_factory(self.dim, layout, faiss.METRIC_INNER_PRODUCT)
        self.index_.train(self._float32(sample))
        self._set_nprobe()
        self._add(keys)
        return self

    def held_ids(self) -> np.ndarray:
        return self.all_ids[self._rows(self.keys_)]

    def upsert(self, ids: Sequence[str], vectors: np.ndarray | None) -> None:
        """Insert ``ids``, coded from ``vectors``, which must be those ids' index rows (re-scoring reads the
        rows), or read from the rows when None. The first insert trains."""
        if vectors is not None and len(vectors) != len(ids):
            raise ValueError(f"store.upsert: {len(ids)} ids for {len(vectors)} vectors")
        if self.index_ is None:
            self.fit(ids)
            return
        self.remove(ids)
        self._add(id_keys(ids), vectors)

    def remove(self, ids: Sequence[str]) -> None:
        import faiss

        keys = id_keys(ids)
        present = keys[np.isin(keys, self.keys_)]
        if len(present):
            self.index_.remove_ids(faiss.IDSelectorBatch(present))
            self.keys_ = self.keys_[~np.isin(self.keys_, present)]

    def _add(self, keys: np.ndarray, vectors: np.ndarray | None = None) -> None:
        for start in range(0, len(keys), 65_536):
            batch = keys[start : start + 65_536]
            coded = self._float32(self._rows(batch)) if vectors is None else vectors[start : start + 65_536]
            self.index_.add_with_ids(np.ascontiguousarray(coded, dtype=np.float32), batch)
        self.keys_ = np.concatenate([self.keys_, keys])

    def search(self, query_vectors: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
        queries = np.ascontiguousarray(np.atleast_2d(query_vectors), dtype=np.float32)
        if self.index_ is None or not len(self):
            return np.zeros((len(queries), 0), dtype=str), np.zeros((len(queries), 0), dtype=np.float32)
        _, keys = self.index_.search(queries, max(k, min(self.refine, len(self))))
        ids, sims = [], []
        for query, row_keys in zip(queries, keys):
            rows = np.sort(self._rows(row_keys[row_keys != MISSING]))  # sorted: sequential reads of mapped rows
            exact = np.asarray(self.vectors[rows], dtype=np.float32) @ query
            best = np.argsort(-exact, kind="stable")[:k]
            ids.append(self.all_ids[rows[best]])
            sims.append(exact[best])
        width = min(len(row) for row in ids)  # the cells visited may hold fewer than k
        return np.stack([row[:width] for row in ids]), np.stack([row[:width] for row in sims])

    def save(self, folder: Path) -> None:
        import faiss

        if self.index_ is not None:
            with atomic_file(folder / INDEX_FILE) as handle:
                handle.write(faiss.serialize_index(self.index_).tobytes())
        save_array(folder / KEYS_FILE, self.keys_)
        save_json(folder / PARAMS_FILE, self.params())

    def params(self) -> dict:
        """Hyperparameters (None: chosen from the gallery's size) and what fitting chose."""
        return {
            "nlist": self.nlist, "nprobe": self.nprobe, "pca_dim": self.pca_dim, "refine": self.refine,
            "fitted": {"nlist": self.nlist_, "nprobe": self.nprobe_, "trained_on": self.trained_on_},
        }

    def outgrown(self, n: int) -> bool:
        """Whether ``n`` held photos are too far from the size the cells were trained for (4x either way)."""
        return not self.trained_on_ / 4 <= n <= 4 * self.trained_on_

    @classmethod
    def load(cls, folder: Path, ids: Sequence[str], vectors: np.ndarray) -> "FaissStore":
        """The store saved in ``folder`` over these index rows; ids it holds that are no longer rows are dropped."""
        import faiss

        params = load_json(folder / PARAMS_FILE)
        fitted = params.pop("fitted")
        store = cls(ids, vectors, **params)
        store.nlist_, store.nprobe_, store.trained_on_ = fitted["nlist"], fitted["nprobe"], fitted["trained_on"]
        held = load_array(folder / KEYS_FILE)
        if not len(held):
            return store
        path = folder / INDEX_FILE
        if not path.is_file():
            raise FileNotFoundError(f"{path}: missing file; rebuild the index (picsearch index ... --store ann)")
        store.index_ = faiss.deserialize_index(np.fromfile(path, dtype=np.uint8))
        store._set_nprobe()
        known = np.isin(held, store._sorted_keys)
        store.keys_ = held[known]
        if not known.all():
            store.index_.remove_ids(faiss.IDSelectorBatch(held[~known]))
        return store

    def _set_nprobe(self) -> None:
        import faiss

        if self.trained_on_ >= MIN_CELL:
            faiss.extract_index_ivf(self.index_).nprobe = self.nprobe_

    def _rows(self, keys: np.ndarray) -> np.ndarray:
        positions = np.searchsorted(self._sorted_keys, keys)
        positions = np.minimum(positions, len(self._sorted_keys) - 1)
        if len(keys) and not np.array_equal(self._sorted_keys[positions], keys):
            raise KeyError("ann store: some ids are not rows of this index")
        return self._rows_by_key[positions]

    def _float32(self, rows: np.ndarray) -> np.ndarray:
        return np.ascontiguousarray(self.vectors[rows], dtype=np.float32)
