"""Row-wise vector arithmetic the matchers and heads share: unit length, cosine, top-k means."""

from __future__ import annotations

import numpy as np


def l2_normalize(vectors: np.ndarray) -> np.ndarray:
    """Rows scaled to unit length (zero rows stay zero), float32."""
    vectors = np.asarray(vectors, dtype=np.float32)
    norms = np.linalg.norm(vectors, axis=1, keepdims=True)
    return vectors / np.maximum(norms, 1e-12)


def rowwise_cosine(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Cosine of each row of ``a`` with the same row of ``b``."""
    return np.einsum("nd,nd->n", l2_normalize(a), l2_normalize(b))


def top_k_mean(similarities: np.ndarray, k: int | None) -> np.ndarray:
    """Row-wise mean of the ``k`` largest values (all of them when ``k`` is None or a row has fewer)."""
    k = similarities.shape[1] if k is None else min(k, similarities.shape[1])
    return np.mean(-np.partition(-similarities, k - 1, axis=1)[:, :k], axis=1)
