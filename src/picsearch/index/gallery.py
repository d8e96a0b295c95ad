"""The gallery index: what retrieval needs about every photo, built once and updated incrementally.

Layout of an index folder::

    INDEX/manifest.json               encoders, model fingerprint, gallery root, counts, data folder
    INDEX/.lock                       held (flock) by the one process updating the index; holds its pid
    INDEX/data-<ns>/items.json        ids, relative paths, content hashes (columns)
    INDEX/data-<ns>/stats.npy         size, mtime_ns, ctime_ns (n, 3) int64 of the bytes that were hashed
    INDEX/data-<ns>/rerank.*.npy      what the reranker reads of a photo besides its joint vector
                                      (:meth:`RelevanceBundle.rerank_vectors`): int8 codes and per-row scales
                                      (:mod:`picsearch.index.codec`); before format 3, the raw image features
                                      instead (``features.*.npy`` int8 codes in format 2, ``features.npy`` float16)
    INDEX/data-<ns>/child_prob.npy    child-detector probability (n,) float32
    INDEX/data-<ns>/child.npy         child flag (n,) bool
    INDEX/data-<ns>/joint.*.npy       joint-space vectors (n, d) of every row, hidden ones too (never searched):
                                      int8 / int4 codes and scales, or ``joint.npy`` (float16 / float32; format 1)
    INDEX/data-<ns>/held.npy          which rows the vector store held when this folder was written (n,) bool
    INDEX/data-<ns>/ann.*             the FAISS index of an ``ann`` store
    INDEX/milvus.db                   the Milvus Lite database of a ``milvus`` store without a server

The vector store (``manifest.json`` field ``store``) holds the visible rows only: see
:mod:`picsearch.index.stores`.

A build writes a fresh ``data-*`` folder and then swaps ``manifest.json`` in one ``os.replace``, so a
reader sees either the old or the new index, never a mix; the data folder it replaced is removed
afterwards. Leftovers of killed runs are removed by the next run holding the index lock.

This module only stores: :mod:`picsearch.index.ingest` reads the gallery and hands it a finished batch.
A row's file is served only while it holds the bytes recorded here (:meth:`GalleryIndex.checked_file`).
"""

from __future__ import annotations

import hashlib
import os
import shutil
import time
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from picsearch.data.files import CheckedFile, FileChecker, FileIdentity
from picsearch.index.codec import QuantizedRows, RowCodec, codec_of, storage_codec
from picsearch.index.stores import StoreSpec, VectorStore, open_store, retire, write_store
from picsearch.models.artifacts import MANIFEST, RelevanceBundle
from picsearch.storage import load_array, load_json, save_array, save_json

FORMAT = "picsearch-index/3"
# format 1: float16 features.npy, float joint.npy; format 2: int8 codes of the raw features (features.*.npy)
READABLE_FORMATS = ("picsearch-index/1", "picsearch-index/2", FORMAT)
RERANK_BITS = 8  # CV, int4 joint codes: reranked R@5 +0.0014 vs float32 (int4 rerank codes, int8 joint: -0.0034)
CODE_BITS = {"int8": 8, "int4": 4}
VECTOR_DTYPES = (*CODE_BITS, "float16", "float32")
DEFAULT_VECTORS = "int4"
MODEL_FILES = (MANIFEST, "*.safetensors", "*.lgb.txt")  # what RelevanceBundle.load reads
UNKNOWN_STAT = (-1, -1, -1)  # an index written before stats were recorded: files are hashed on first use


class IndexFormatError(ValueError):
    """An index folder is missing, of another format, or inconsistent; the message names the file."""


def image_id(relative_path: str) -> str:
    """Stable, URL-safe id of a gallery photo: it survives content changes of the same file."""
    return hashlib.sha1(relative_path.encode("utf-8")).hexdigest()[:16]


def model_fingerprint(model_dir: Path) -> str:
    """sha256 over the bundle's files (names and bytes): an index remembers which model made it."""
    digest = hashlib.sha256()
    files = sorted({path for pattern in MODEL_FILES for path in Path(model_dir).glob(pattern)})
    if not files:
        raise FileNotFoundError(f"{model_dir}: no trained models here (missing {MANIFEST}); run `picsearch train`")
    for path in files:
        digest.update(path.name.encode() + b"\0" + path.read_bytes())
    return digest.hexdigest()


@dataclass
class GalleryIndex:
    """Rows aligned by position: ``ids[i]``, ``paths[i]`` (relative to ``root``), ``hashes[i]``
    (blake2b-160 of the bytes checked), ``rerank[i]`` (what the reranker reads besides the joint vector),
    ``child_prob[i]``, ``child[i]``, ``joint[i]`` (its joint-space vector), ``stats[i]`` (size, mtime_ns,
    ctime_ns of those bytes). ``store`` says which vector store serves the visible rows; ``data_dir`` is
    the folder it was loaded from."""

    root: Path
    ids: list[str]
    paths: list[str]
    hashes: list[str]
    rerank: np.ndarray | QuantizedRows
    """:meth:`RelevanceBundle.rerank_vectors` of every photo, or (``raw_features``) its raw image features."""
    child_prob: np.ndarray
    child: np.ndarray
    joint: np.ndarray | QuantizedRows
    meta: dict = field(default_factory=dict)
    stats: np.ndarray | None = None  # None: unknown (every file is hashed once on first use)
    store: StoreSpec = field(default_factory=StoreSpec)
    data_dir: Path | None = None
    raw_features: bool = False
    """``rerank`` holds raw image features (an index of format 1 or 2): scored by :meth:`RelevanceBundle.score`."""
    rerank_codec: RowCodec | None = None
    """How ``save`` quantizes ``rerank`` (:func:`storage_codec`: this while it has :data:`RERANK_BITS`, else the
    codec ``rerank`` was loaded with, else one fitted on it)."""
    vector_dtype: str = DEFAULT_VECTORS
    """How ``save`` stores the joint vectors: one of :data:`VECTOR_DTYPES`."""
    vector_codec: RowCodec | None = None
    """How ``save`` quantizes int8 / int4 joint vectors (:func:`storage_codec`: this while its bits match, else the
    codec ``joint`` was loaded with, else one fitted on them)."""
    _checker: FileChecker | None = field(default=None, repr=False, compare=False)

    def __post_init__(self) -> None:
        if self.stats is None:
            self.stats = np.tile(np.asarray(UNKNOWN_STAT, dtype=np.int64), (len(self.ids), 1))

    def __len__(self) -> int:
        return len(self.ids)

    def identity(self, row: int) -> FileIdentity:
        """What the index checked about the file of ``row``."""
        size, mtime_ns, ctime_ns = (int(value) for value in self.stats[row])
        return FileIdentity(self.hashes[row], size, mtime_ns, ctime_ns)

    def checked_file(self, row: int) -> CheckedFile:
        """``row``'s file by its real path, while it holds the bytes the index checked, inside the gallery.

        Raises :class:`picsearch.data.files.UncheckedFileError` (a ``KeyError``) naming the file otherwise:
        changed since indexing, gone, or resolving out of the gallery (a symlink swapped in).
        """
        if self._checker is None:
            self._checker = FileChecker(self.root)
        return self._checker.check(self.paths[row], self.identity(row))

    def rows(self) -> dict[str, int]:
        """id -> row position."""
        return {image_id: row for row, image_id in enumerate(self.ids)}

    def absolute_path(self, row: int) -> Path:
        """Where ``row``'s file was indexed (unchecked: use :meth:`checked_file` to read or serve it)."""
        return self.root / self.paths[row]

    def rerank_scores(
        self, bundle: RelevanceBundle, rows: np.ndarray, text_feats: np.ndarray, mapped: np.ndarray | None = None
    ) -> np.ndarray:
        """Relevance of ``rows`` (positions) with aligned ``text_feats`` rows (or one row) from what is stored;
        ``mapped``: which of them came through the text map (:meth:`RelevanceBundle.score`)."""
        if self.raw_features:
            return bundle.score(np.asarray(self.rerank[rows], dtype=np.float32), text_feats, mapped)
        joint, rerank = (np.asarray(part[rows], dtype=np.float32) for part in (self.joint, self.rerank))
        return bundle.score_stored(joint, rerank, text_feats, mapped)

    def save(self, folder: Path, visible: np.ndarray | None = None) -> None:
        """Write a new data folder, fill its vector store with the ``visible`` rows (default: not flagged),
        then swap the manifest to point at it (atomic for readers).

        Only the data folder the old manifest named is removed: this save made it stale. A reader that
        had it open keeps its (unlinked, still mapped) files. A Milvus collection left behind by a change
        of store is dropped once the new manifest is in place.
        """
        if self.raw_features:
            raise ValueError("an index of raw features (format 1 or 2) is converted by `picsearch index`, not re-saved")
        folder.mkdir(parents=True, exist_ok=True)
        data_name = f"data-{time.time_ns()}-{os.getpid()}"
        data = folder / data_name
        save_json(data / "items.json", {"ids": self.ids, "paths": self.paths, "hashes": self.hashes})
        save_array(data / "stats.npy", np.asarray(self.stats, dtype=np.int64))
        self.rerank = QuantizedRows.encode(self.rerank, self._rerank_codec())
        self.rerank.save(data, "rerank")
        save_array(data / "child_prob.npy", self.child_prob.astype(np.float32, copy=False))
        save_array(data / "child.npy", self.child.astype(bool, copy=False))
        self.joint = _save_vectors(data, self.joint, self.vector_dtype, self._vector_codec())
        previous = _previous_version(folder)
        visible = ~np.asarray(self.child, dtype=bool) if visible is None else visible
        changed, rescored = self._changes_since(previous)
        spec = write_store(
            self.store, folder, data, self.ids, self.joint, visible,
            (previous.store, previous.data_dir) if previous else None, changed, rescored,
        )
        manifest = {
            **self.meta,
            "format": FORMAT,
            "data": data_name,
            "gallery": str(self.root.resolve()),
            "count": len(self),
            "child_flagged": int(self.child.sum()),
            "store": spec.to_json(),
            "vector_dtype": self.vector_dtype,
            "rerank_dtype": f"int{self.rerank.codec.bits}",
            "rerank_segments": self.rerank.codec.to_json(),
            **({"vector_segments": self.joint.codec.to_json()} if isinstance(self.joint, QuantizedRows) else {}),
        }
        save_json(folder / "manifest.json", manifest)
        self.store, self.data_dir = spec, data
        if previous is not None:
            retire(previous.store, spec, folder)
            if previous.data_dir.name != data_name:
                shutil.rmtree(previous.data_dir, ignore_errors=True)

    def _changes_since(self, previous: "_Version | None") -> tuple[list[str], bool]:
        """Ids whose content changed since ``previous``, and whether the model did (every vector is new)."""
        if previous is None:
            return [], False
        old = dict(zip(previous.ids, previous.hashes))
        changed = [i for i, digest in zip(self.ids, self.hashes) if old.get(i, digest) != digest]
        return changed, previous.fingerprint != self.meta.get("model_fingerprint")

    def open_store(self) -> tuple[VectorStore, np.ndarray]:
        """The vector store this index was saved with and the rows (bool mask) it held then; an index
        never saved gets an empty exact store."""
        if self.data_dir is None:
            return open_store(StoreSpec(), self.root, None, self.ids, self.joint)
        return open_store(self.store, self.data_dir.parent, self.data_dir, self.ids, self.joint)

    @classmethod
    def load(cls, folder: Path, mmap: bool = True) -> "GalleryIndex":
        """Read an index; ``mmap`` maps the big arrays (only the rows a query reranks are paged in).

        A manifest whose data folder is missing raises :class:`IndexFormatError` (``picsearch index``
        then rebuilds); a folder removed by a writer between reading the manifest and it is retried once.
        """
        manifest = read_manifest(folder)
        if not (folder / manifest["data"]).is_dir():
            manifest = read_manifest(folder)  # a writer may just have swapped it
        data = folder / manifest["data"]
        if not data.is_dir():
            raise IndexFormatError(f"{data}: the data folder named by manifest.json is missing; rebuild the index")
        items = load_json(data / "items.json")
        rerank, joint = _load_rows(data, manifest, mmap)
        index = cls(
            root=Path(manifest["gallery"]),
            ids=list(items["ids"]),
            paths=list(items["paths"]),
            hashes=list(items["hashes"]),
            stats=load_array(data / "stats.npy") if (data / "stats.npy").is_file() else None,
            rerank=rerank,
            raw_features=manifest["format"] != FORMAT,
            child_prob=load_array(data / "child_prob.npy"),
            child=load_array(data / "child.npy"),
            joint=joint,
            meta={k: v for k, v in manifest.items() if k in META_KEYS},
            store=StoreSpec.from_json(manifest.get("store"), str(folder / "manifest.json")),
            data_dir=data,
            vector_dtype=str(manifest.get("vector_dtype", joint.dtype)),
        )
        index.check(data)
        return index

    def check(self, where: Path) -> None:
        """Every column has one row per id, and the store holds exactly these ids in this order."""
        n = len(self.ids)
        sizes = {
            "items.json paths": len(self.paths),
            "items.json hashes": len(self.hashes),
            "stats.npy": len(self.stats),
            "rerank": len(self.rerank),
            "child_prob.npy": len(self.child_prob),
            "child.npy": len(self.child),
            "joint": len(self.joint),
        }
        for name, size in sizes.items():
            if size != n:
                raise IndexFormatError(f"{where / name.split()[0]}: {size} rows for {n} ids; rebuild the index")

    def _rerank_codec(self) -> RowCodec:
        """:func:`storage_codec` of the rerank rows, keeping the one given, else the one they were loaded with."""
        return storage_codec(self.rerank, RERANK_BITS, self.rerank_codec or codec_of(self.rerank))

    def _vector_codec(self) -> RowCodec | None:
        """:func:`storage_codec` of the joint vectors as :attr:`vector_dtype`, keeping the one given, else the one
        they were loaded with."""
        return storage_codec(self.joint, CODE_BITS.get(self.vector_dtype), self.vector_codec or codec_of(self.joint))


def _save_vectors(
    data: Path, joint: np.ndarray | QuantizedRows, dtype: str, codec: RowCodec | None
) -> np.ndarray | QuantizedRows:
    """Write the joint vectors as ``dtype`` (:data:`VECTOR_DTYPES`; codes through ``codec``); returns them as a
    reader will see them."""
    if dtype in CODE_BITS:
        quantized = QuantizedRows.encode(joint, codec)
        quantized.save(data, "joint")
        return quantized
    vectors = np.asarray(joint, dtype=dtype)
    save_array(data / "joint.npy", vectors)
    return vectors


def _load_rows(data: Path, manifest: dict, mmap: bool) -> tuple[np.ndarray | QuantizedRows, np.ndarray | QuantizedRows]:
    """Rerank rows and joint vectors of a data folder, in the layout its manifest records (every format so far)."""
    name, key = ("rerank", "rerank") if manifest["format"] == FORMAT else ("features", "feature")
    kind = manifest.get(f"{key}_dtype")
    if kind in CODE_BITS:
        rerank = QuantizedRows.load(data, name, manifest.get(f"{key}_segments"), CODE_BITS[kind], mmap)
    else:
        rerank = load_array(data / "features.npy", mmap=mmap)
    kind = manifest.get("vector_dtype")
    if kind in CODE_BITS:
        return rerank, QuantizedRows.load(data, "joint", manifest.get("vector_segments"), CODE_BITS[kind], mmap)
    legacy = not (data / "joint.npy").is_file()  # written before stores were chosen: store/vectors.npy
    return rerank, load_array(data / ("store/vectors.npy" if legacy else "joint.npy"), mmap=mmap)


META_KEYS = ("image_encoder", "text_encoder", "image_encoder_id", "model", "model_fingerprint", "created")


def remove_leftovers(folder: Path) -> list[str]:
    """Delete the ``data-*`` folders the manifest does not name; call it holding the index lock
    (no other writer can then be filling one). Returns their names."""
    current = _data_folder(folder)
    leftovers = sorted(path.name for path in folder.glob("data-*") if path.is_dir() and path.name != current)
    for name in leftovers:
        shutil.rmtree(folder / name, ignore_errors=True)
    return leftovers


@dataclass(frozen=True)
class _Version:
    """What a save needs of the index it replaces: its data folder, store, rows' content and model."""

    data_dir: Path
    store: StoreSpec
    ids: list[str]
    hashes: list[str]
    fingerprint: str | None


def _previous_version(folder: Path) -> _Version | None:
    """The readable index currently at ``folder``, else None (nothing to reuse or retire)."""
    try:
        manifest = read_manifest(folder)
        data = folder / str(manifest["data"])
        items = load_json(data / "items.json")
        store = StoreSpec.from_json(manifest.get("store"), str(folder / "manifest.json"))
    except (OSError, ValueError, KeyError, TypeError):
        return None
    return _Version(data, store, items["ids"], items["hashes"], manifest.get("model_fingerprint"))


def _data_folder(folder: Path) -> str | None:
    """The data folder named by the manifest at ``folder``, or None when there is no readable one."""
    try:
        return str(load_json(folder / "manifest.json")["data"])
    except (OSError, ValueError, KeyError, TypeError):
        return None


def read_manifest(folder: Path) -> dict:
    """The manifest of the index at ``folder``, checked for format."""
    path = folder / "manifest.json"
    if not path.is_file():
        raise FileNotFoundError(f"{folder}: no index here (missing manifest.json); build one with `picsearch index`")
    manifest = load_json(path)
    if manifest.get("format") not in READABLE_FORMATS:
        raise IndexFormatError(
            f"{path}: field format: expected one of {', '.join(READABLE_FORMATS)}, found {manifest.get('format')!r}; "
            "rebuild the index with `picsearch index`"
        )
    return manifest
