"""The exact store: every query scores every held vector (blocked matmul); the default for small galleries."""

from __future__ import annotations

from pathlib import Path
from typing import Sequence

import numpy as np

BLOCK_ROWS = 65_536  # rows scored per matmul: bounds the float32 copy of a float16 store


class NumpyStore:
    """Exact search on one (n, d) matrix, float16 or float32: blocked matmul + argpartition."""

    kind = "exact"

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

    def held_ids(self) -> np.ndarray:
        return self.ids

    def upsert(self, ids: Sequence[str], vectors: np.ndarray) -> None:
        vectors = np.asarray(vectors).astype(self.vectors.dtype, copy=False)
        if vectors.shape != (len(ids), self.dim):
            raise ValueError(f"store.upsert: expected ({len(ids)}, {self.dim}) vectors, got {vectors.shape}")
        self.remove(ids)
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
        """Nothing to write: its vectors are the index's ``joint.npy`` rows it was opened with."""

    def nbytes(self) -> int:
        return int(self.vectors.nbytes + self.ids.nbytes)


def _top_k(sims: np.ndarray, k: int) -> np.ndarray:
    """Column indices of the k largest values per row (unordered)."""
    if k >= sims.shape[1]:
        return np.broadcast_to(np.arange(sims.shape[1]), sims.shape).copy()
    return np.argpartition(-sims, k - 1, axis=1)[:, :k]


__all__ = ["NumpyStore"]
