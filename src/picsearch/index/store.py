"""Vector stores: the small interface retrieval goes through, and the default exact numpy store."""

from __future__ import annotations

from pathlib import Path
from typing import Protocol, Sequence, runtime_checkable

import numpy as np

from picsearch.storage import load_array, save_array

BLOCK_ROWS = 65_536  # rows scored per matmul: bounds the float32 copy of a float16 store


@runtime_checkable
class VectorStore(Protocol):
    """Maps string ids to L2-normalized vectors and finds the most similar ones (inner product)."""

    ids: np.ndarray

    def __len__(self) -> int: ...

    def add(self, ids: Sequence[str], vectors: np.ndarray) -> None:
        """Append vectors under new ids (ids already present raise ValueError)."""

    def remove(self, ids: Sequence[str]) -> None:
        """Drop the given ids (unknown ids are ignored)."""

    def search(self, query_vectors: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
        """(m, d) queries -> ids (m, k') and similarities (m, k'), best first; k' = min(k, len)."""

    def save(self, folder: Path) -> None:
        """Write the store into ``folder`` (safe formats, atomic per file)."""


class NumpyStore:
    """Exact search on one (n, d) matrix, float16 or float32: blocked matmul + argpartition."""

    kind = "numpy-exact"

    def __init__(self, ids: np.ndarray, vectors: np.ndarray) -> None:
        if vectors.ndim != 2 or len(ids) != len(vectors):
            raise ValueError(f"store needs (n, d) vectors for n ids, got {vectors.shape} for {len(ids)} ids")
        self.ids = np.asarray(ids, dtype=str)
        self.vectors = vectors

    @classmethod
    def empty(cls, dim: int, dtype: str = "float32") -> "NumpyStore":
        return cls(np.zeros(0, dtype=str), np.zeros((0, dim), dtype=dtype))

    def __len__(self) -> int:
        return len(self.ids)

    @property
    def dim(self) -> int:
        return self.vectors.shape[1]

    def add(self, ids: Sequence[str], vectors: np.ndarray) -> None:
        if len(set(ids) & set(self.ids.tolist())):
            raise ValueError("store.add: some ids are already in the store")
        vectors = np.asarray(vectors).astype(self.vectors.dtype, copy=False)
        if vectors.shape != (len(ids), self.dim):
            raise ValueError(f"store.add: expected ({len(ids)}, {self.dim}) vectors, got {vectors.shape}")
        self.ids = np.concatenate([self.ids, np.asarray(ids, dtype=str)])
        self.vectors = np.concatenate([self.vectors, vectors])

    def remove(self, ids: Sequence[str]) -> None:
        keep = ~np.isin(self.ids, np.asarray(list(ids), dtype=str))
        self.ids = self.ids[keep]
        self.vectors = self.vectors[keep]

    def search(self, query_vectors: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
        queries = np.atleast_2d(np.asarray(query_vectors, dtype=np.float32))
        k = min(k, len(self))
        best_sims = np.full((len(queries), 0), -np.inf, dtype=np.float32)
        best_rows = np.zeros((len(queries), 0), dtype=np.int64)
        for start in range(0, len(self), BLOCK_ROWS):
            block = np.asarray(self.vectors[start : start + BLOCK_ROWS], dtype=np.float32)
            sims = queries @ block.T
            rows = _top_k(sims, k) + start
            best_sims = np.concatenate([best_sims, np.take_along_axis(sims, rows - start, axis=1)], axis=1)
            best_rows = np.concatenate([best_rows, rows], axis=1)
            keep = _top_k(best_sims, k)
            best_sims = np.take_along_axis(best_sims, keep, axis=1)
            best_rows = np.take_along_axis(best_rows, keep, axis=1)
        order = np.argsort(-best_sims, axis=1, kind="stable")
        return self.ids[np.take_along_axis(best_rows, order, axis=1)], np.take_along_axis(best_sims, order, axis=1)

    def save(self, folder: Path) -> None:
        folder.mkdir(parents=True, exist_ok=True)
        save_array(folder / "vectors.npy", self.vectors)
        save_array(folder / "ids.npy", self.ids)

    @classmethod
    def load(cls, folder: Path, mmap: bool = False) -> "NumpyStore":
        """Read a saved store; ``mmap`` maps the matrix instead of reading it (pages load on demand)."""
        return cls(load_array(folder / "ids.npy"), load_array(folder / "vectors.npy", mmap=mmap))

    def nbytes(self) -> int:
        return int(self.vectors.nbytes + self.ids.nbytes)


def _top_k(sims: np.ndarray, k: int) -> np.ndarray:
    """Column indices of the k largest values per row (unordered)."""
    if k >= sims.shape[1]:
        return np.broadcast_to(np.arange(sims.shape[1]), sims.shape).copy()
    return np.argpartition(-sims, k - 1, axis=1)[:, :k]


__all__ = ["NumpyStore", "VectorStore"]
