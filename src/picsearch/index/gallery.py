"""The gallery index: what retrieval needs about every photo, built once and updated incrementally.

Layout of an index folder::

    INDEX/manifest.json               encoders, model fingerprint, gallery root, counts, data folder
    INDEX/.lock                       held (flock) by the one process updating the index; holds its pid
    INDEX/data-<ns>/items.json        ids, relative paths, content hashes (columns)
    INDEX/data-<ns>/stats.npy         size, mtime_ns, ctime_ns (n, 3) int64 of the bytes that were hashed
    INDEX/data-<ns>/features.npy      raw image features (n, F) float16, for the reranker
    INDEX/data-<ns>/child_prob.npy    child-detector probability (n,) float32
    INDEX/data-<ns>/child.npy         child flag (n,) bool
    INDEX/data-<ns>/store/            the vector store (joint-space vectors + ids)

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
from picsearch.index.store import NumpyStore
from picsearch.models.artifacts import MANIFEST
from picsearch.storage import load_array, load_json, save_array, save_json

FORMAT = "picsearch-index/1"
FEATURE_DTYPE = "float16"  # halves disk and page cache; on test pairs scores move by 2e-5 on average (max 0.04)
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
    (blake2b-160 of the bytes checked), ``features[i]``, ``child_prob[i]``, ``child[i]``, ``stats[i]``
    (size, mtime_ns, ctime_ns of those bytes); ``store`` holds the joint vectors by id."""

    root: Path
    ids: list[str]
    paths: list[str]
    hashes: list[str]
    features: np.ndarray
    child_prob: np.ndarray
    child: np.ndarray
    store: NumpyStore
    meta: dict = field(default_factory=dict)
    stats: np.ndarray | None = None  # None: unknown (every file is hashed once on first use)
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

    def save(self, folder: Path) -> None:
        """Write a new data folder, then swap the manifest to point at it (atomic for readers).

        Only the data folder the old manifest named is removed: this save made it stale. A reader that
        had it open keeps its (unlinked, still mapped) files.
        """
        folder.mkdir(parents=True, exist_ok=True)
        data_name = f"data-{time.time_ns()}-{os.getpid()}"
        data = folder / data_name
        save_json(data / "items.json", {"ids": self.ids, "paths": self.paths, "hashes": self.hashes})
        save_array(data / "stats.npy", np.asarray(self.stats, dtype=np.int64))
        save_array(data / "features.npy", self.features.astype(FEATURE_DTYPE, copy=False))
        save_array(data / "child_prob.npy", self.child_prob.astype(np.float32, copy=False))
        save_array(data / "child.npy", self.child.astype(bool, copy=False))
        self.store.save(data / "store")
        manifest = {
            **self.meta,
            "format": FORMAT,
            "data": data_name,
            "gallery": str(self.root.resolve()),
            "count": len(self),
            "child_flagged": int(self.child.sum()),
            "store": self.store.kind,
            "vector_dtype": str(self.store.vectors.dtype),
            "feature_dtype": FEATURE_DTYPE,
        }
        replaced = _data_folder(folder)
        save_json(folder / "manifest.json", manifest)
        if replaced not in (None, data_name):
            shutil.rmtree(folder / replaced, ignore_errors=True)

    @classmethod
    def load(cls, folder: Path, mmap: bool = True) -> "GalleryIndex":
        """Read an index; ``mmap`` maps the big arrays (features: only reranked rows are paged in).

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
        index = cls(
            root=Path(manifest["gallery"]),
            ids=list(items["ids"]),
            paths=list(items["paths"]),
            hashes=list(items["hashes"]),
            stats=load_array(data / "stats.npy") if (data / "stats.npy").is_file() else None,
            features=load_array(data / "features.npy", mmap=mmap),
            child_prob=load_array(data / "child_prob.npy"),
            child=load_array(data / "child.npy"),
            store=NumpyStore.load(data / "store", mmap=mmap),
            meta={k: v for k, v in manifest.items() if k in META_KEYS},
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
            "features.npy": len(self.features),
            "child_prob.npy": len(self.child_prob),
            "child.npy": len(self.child),
            "store": len(self.store),
        }
        for name, size in sizes.items():
            if size != n:
                raise IndexFormatError(f"{where / name.split()[0]}: {size} rows for {n} ids; rebuild the index")
        if not np.array_equal(self.store.ids, np.asarray(self.ids, dtype=str)):
            raise IndexFormatError(f"{where / 'store'}: ids differ from items.json; rebuild the index")


META_KEYS = ("image_encoder", "text_encoder", "image_encoder_id", "model", "model_fingerprint", "created")


def remove_leftovers(folder: Path) -> list[str]:
    """Delete the ``data-*`` folders the manifest does not name; call it holding the index lock
    (no other writer can then be filling one). Returns their names."""
    current = _data_folder(folder)
    leftovers = sorted(path.name for path in folder.glob("data-*") if path.is_dir() and path.name != current)
    for name in leftovers:
        shutil.rmtree(folder / name, ignore_errors=True)
    return leftovers


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
    if manifest.get("format") != FORMAT:
        raise IndexFormatError(f"{path}: field format: expected {FORMAT!r}, found {manifest.get('format')!r}")
    return manifest
