"""Row-wise vector arithmetic the matchers and heads share: unit length, cosine, top-k means."""

from __future__ import annotations

import numpy as np
import pandas as pd


def l2_normalize(vectors: np.ndarray) -> np.ndarray:
    """Rows scaled to unit length (zero rows stay zero), float32."""
    vectors = np.asarray(vectors, dtype=np.float32)
    norms = np.linalg.norm(vectors, axis=1, keepdims=True)
    return vectors / np.maximum(norms, 1e-12)


def unique_rows(vectors: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """The distinct rows of a 2-d array, in order of first appearance, and each row's index among them.

    Rows are equal when their bytes are, so 0.0 and -0.0 differ (``np.unique(axis=0)`` compares values): the
    duplicates this finds are copies of one vector. Found by hashing rather than sorting: ``np.unique`` sorting
    rows of thousands of floats took 6% of `train`'s CPU time."""
    vectors = np.ascontiguousarray(vectors)
    rows = vectors.view(np.dtype((np.void, vectors.dtype.itemsize * vectors.shape[1]))).ravel()
    inverse = pd.factorize(rows)[0]
    first = np.unique(inverse, return_index=True)[1]  # codes count up in order of first appearance
    return vectors[first], inverse.astype(np.int64)


def rowwise_cosine(
    a: np.ndarray, b: np.ndarray, a_rows: np.ndarray | None = None, b_rows: np.ndarray | None = None
) -> np.ndarray:
    """Cosine of row ``a_rows[i]`` of ``a`` with row ``b_rows[i]`` of ``b`` (without indices: row i with row i).
    Each row is normalized once, before the indices repeat it."""
    a, b = l2_normalize(a), l2_normalize(b)
    return np.einsum("nd,nd->n", a if a_rows is None else a[a_rows], b if b_rows is None else b[b_rows])


def top_k_mean(similarities: np.ndarray, k: int | None) -> np.ndarray:
    """Row-wise mean of the ``k`` largest values (all of them when ``k`` is None or a row has fewer)."""
    k = similarities.shape[1] if k is None else min(k, similarities.shape[1])
    return np.mean(-np.partition(-similarities, k - 1, axis=1)[:, :k], axis=1)
