"""A content-addressed embedding store: vectors of one encoder, keyed by a hash of what was embedded.

Layout: ``<cache_dir>/<encoder id>/chunk-*.npy`` (float32 rows) next to ``chunk-*.json`` manifests
(``keys``, ``shape``, blake2b checksum of the .npy bytes). Both are written to a temporary name and
renamed into place, the manifest last, so a chunk exists only once complete; a run killed midway
keeps every chunk it finished. On open, a chunk whose file is missing, truncated, or differs from
its manifest's checksum or shape is reported, deleted, and its keys become misses to recompute.
Nothing is pickled: arrays load with ``allow_pickle=False``.
"""

from __future__ import annotations

import io
import json
import logging
import os
import re
import time
from pathlib import Path
from typing import Iterable, Sequence

import numpy as np

from picsearch.data.files import content_digest, identify
from picsearch.storage import write_bytes

FORMAT = 1
log = logging.getLogger(__name__)


def file_digest(path: str | os.PathLike) -> str:
    """The cache key of a file's bytes (its name and time do not matter)."""
    return identify(path).digest


def text_digest(text: str) -> str:
    """The cache key of a text (exact UTF-8 bytes)."""
    return content_digest(text.encode("utf-8"))


def _npy_bytes(array: np.ndarray) -> bytes:
    buffer = io.BytesIO()
    np.save(buffer, array, allow_pickle=False)
    return buffer.getvalue()


class CorruptChunkError(ValueError):
    """A chunk's files do not match its manifest."""


class EmbeddingStore:
    """The vectors one encoder has computed, by content key; add chunks, look keys up, compact."""

    def __init__(self, cache_dir: str | os.PathLike, encoder_id: str, dim: int) -> None:
        self.encoder_id = encoder_id
        self.dim = dim
        self.folder = Path(cache_dir) / _folder_name(encoder_id)
        self.problems: list[str] = []
        self._chunks: dict[str, np.ndarray] = {}
        self._where: dict[str, tuple[str, int]] = {}
        self._counter = 0
        if self.folder.is_dir():
            for manifest in sorted(self.folder.glob("chunk-*.json")):
                self._open_chunk(manifest)

    def __len__(self) -> int:
        return len(self._where)

    def __contains__(self, key: str) -> bool:
        return key in self._where

    def missing(self, keys: Iterable[str]) -> list[str]:
        """Keys not in the store, each once, in first-seen order."""
        return [key for key in dict.fromkeys(keys) if key not in self._where]

    def get(self, keys: Sequence[str]) -> np.ndarray:
        """Vectors of ``keys`` as (len(keys), dim) float32; raises KeyError for a key not stored."""
        out = np.empty((len(keys), self.dim), dtype=np.float32)
        for i, key in enumerate(keys):
            chunk, row = self._where[key]
            out[i] = self._chunks[chunk][row]
        return out

    def add(self, keys: Sequence[str], vectors: np.ndarray) -> None:
        """Store one chunk of vectors, durably and atomically."""
        vectors = np.ascontiguousarray(vectors, dtype=np.float32)
        if vectors.shape != (len(keys), self.dim):
            raise ValueError(f"{self.encoder_id}: got vectors {vectors.shape} for {len(keys)} keys of dim {self.dim}")
        if not keys:
            return
        self.folder.mkdir(parents=True, exist_ok=True)
        self._counter += 1
        name = f"chunk-{time.time_ns():020d}-{os.getpid()}-{self._counter:05d}"
        self._write_chunk(name, list(keys), vectors)

    def compact(self) -> None:
        """Merge all chunks into one (fewer files, faster opening) and remove leftovers of killed runs."""
        if len(self._chunks) > 1:
            keys = list(self._where)
            merged = self.get(keys)
            old = list(self._chunks)
            self._counter += 1
            self._write_chunk(f"chunk-{time.time_ns():020d}-{os.getpid()}-{self._counter:05d}", keys, merged)
            for name in old:
                self._delete(name)
        if self.folder.is_dir():
            live = {f"{name}{suffix}" for name in self._chunks for suffix in (".npy", ".json")}
            for path in self.folder.iterdir():
                if path.name not in live and (".tmp-" in path.name or path.suffix == ".npy"):
                    path.unlink(missing_ok=True)

    def _write_chunk(self, name: str, keys: list[str], vectors: np.ndarray) -> None:
        data = _npy_bytes(vectors)
        manifest = {
            "format": FORMAT,
            "encoder_id": self.encoder_id,
            "shape": list(vectors.shape),
            "dtype": "float32",
            "blake2b": content_digest(data),
            "keys": keys,
        }
        write_bytes(self.folder / f"{name}.npy", data)
        write_bytes(self.folder / f"{name}.json", json.dumps(manifest).encode("utf-8"))
        self._register(name, keys, vectors)

    def _register(self, name: str, keys: list[str], vectors: np.ndarray) -> None:
        self._chunks[name] = vectors
        for row, key in enumerate(keys):
            self._where[key] = (name, row)

    def _open_chunk(self, manifest_path: Path) -> None:
        name = manifest_path.stem
        try:
            keys, vectors = self._read_chunk(manifest_path)
        except (CorruptChunkError, OSError, ValueError, KeyError, TypeError) as exc:
            message = f"{manifest_path.with_suffix('.npy')}: corrupt cache chunk, recomputing its entries ({exc})"
            log.warning(message)
            self.problems.append(message)
            self._delete(name)
            return
        self._register(name, keys, vectors)

    def _read_chunk(self, manifest_path: Path) -> tuple[list[str], np.ndarray]:
        manifest = json.loads(manifest_path.read_text(encoding="utf-8"))
        if manifest.get("format") != FORMAT or manifest.get("encoder_id") != self.encoder_id:
            raise CorruptChunkError(f"manifest is for {manifest.get('encoder_id')!r}, format {manifest.get('format')}")
        data = manifest_path.with_suffix(".npy").read_bytes()
        if content_digest(data) != manifest["blake2b"]:
            raise CorruptChunkError("checksum mismatch")
        vectors = np.load(io.BytesIO(data), allow_pickle=False)
        keys = manifest["keys"]
        expected = (len(keys), self.dim)
        if vectors.dtype != np.float32 or vectors.shape != expected or list(expected) != manifest["shape"]:
            raise CorruptChunkError(f"array {vectors.dtype} {vectors.shape}, expected float32 {expected}")
        return keys, vectors

    def _delete(self, name: str) -> None:
        # The manifest goes first: a chunk without a manifest is never read.
        for suffix in (".json", ".npy"):
            (self.folder / f"{name}{suffix}").unlink(missing_ok=True)
        if self._chunks.pop(name, None) is not None:
            self._where = {key: where for key, where in self._where.items() if where[0] != name}


def _folder_name(encoder_id: str) -> str:
    safe = re.sub(r"[^A-Za-z0-9._-]+", "_", encoder_id)
    return safe if safe == encoder_id else f"{safe}-{content_digest(encoder_id.encode())[:8]}"
