"""Pieces every estimator of :mod:`picsearch.models` shares: export format, standardizer, ridge solver."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np
from scipy.linalg import solve


@dataclass
class Exported:
    """A fitted estimator in safe formats: JSON ``params``, float ``arrays`` (safetensors), ``texts`` (LightGBM)."""

    params: dict[str, Any]
    arrays: dict[str, np.ndarray] = field(default_factory=dict)
    texts: dict[str, str] = field(default_factory=dict)


def l2_normalize(vectors: np.ndarray) -> np.ndarray:
    """Rows scaled to unit length (zero rows stay zero), float32."""
    vectors = np.asarray(vectors, dtype=np.float32)
    norms = np.linalg.norm(vectors, axis=1, keepdims=True)
    return vectors / np.maximum(norms, 1e-12)


def rowwise_cosine(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Cosine of each row of ``a`` with the same row of ``b``."""
    return np.einsum("nd,nd->n", l2_normalize(a), l2_normalize(b))


@dataclass
class Standardizer:
    """Zero mean, unit variance per column (constant columns are only centred)."""

    mean: np.ndarray | None = None
    scale: np.ndarray | None = None

    def fit(self, x: np.ndarray) -> Standardizer:
        self.mean = x.mean(axis=0).astype(np.float32)
        std = x.std(axis=0)
        self.scale = np.where(std > 1e-8, std, 1.0).astype(np.float32)
        return self

    def transform(self, x: np.ndarray) -> np.ndarray:
        return ((x - self.mean) / self.scale).astype(np.float32)

    def export(self, prefix: str) -> dict[str, np.ndarray]:
        return {f"{prefix}mean": self.mean, f"{prefix}scale": self.scale}

    @classmethod
    def restore(cls, arrays: dict[str, np.ndarray], prefix: str) -> Standardizer:
        return cls(arrays[f"{prefix}mean"], arrays[f"{prefix}scale"])


def ridge_solve(x: np.ndarray, y: np.ndarray, alpha: float) -> np.ndarray:
    """Weights ``w`` minimising ``|x w - y|^2 + alpha |w|^2`` (x and y centred), via the smaller Gram matrix."""
    x64, y64 = x.astype(np.float64), y.astype(np.float64)
    n, d = x64.shape
    if n < d:
        gram = x64 @ x64.T + alpha * np.eye(n)
        return (x64.T @ solve(gram, y64, assume_a="pos")).astype(np.float32)
    gram = x64.T @ x64 + alpha * np.eye(d)
    return solve(gram, x64.T @ y64, assume_a="pos").astype(np.float32)


def nest(parts: dict[str, Exported], params: dict[str, Any]) -> Exported:
    """One :class:`Exported` holding several named parts (arrays and texts prefixed ``name/``)."""
    nested = Exported({**params, "parts": {name: part.params for name, part in parts.items()}})
    for name, part in parts.items():
        nested.arrays.update({f"{name}/{key}": value for key, value in part.arrays.items()})
        nested.texts.update({f"{name}/{key}": value for key, value in part.texts.items()})
    return nested


def unnest(exported: Exported) -> dict[str, Exported]:
    """The named parts of a :func:`nest` result."""

    def strip(items: dict[str, Any], name: str) -> dict[str, Any]:
        return {key.split("/", 1)[1]: value for key, value in items.items() if key.startswith(f"{name}/")}

    return {
        name: Exported(params, strip(exported.arrays, name), strip(exported.texts, name))
        for name, params in exported.params["parts"].items()
    }
