"""scikit-learn's ``StandardScaler`` and ``Ridge`` as the estimators use them, with their fitted arrays kept in
safe formats (the arrays are saved, never the objects)."""

from __future__ import annotations

import numpy as np
from sklearn.linear_model import Ridge
from sklearn.preprocessing import StandardScaler


def fit_scaler(x: np.ndarray) -> StandardScaler:
    """Zero mean, unit variance per column (constant columns are only centred)."""
    return StandardScaler().fit(x)


def scale(scaler: StandardScaler, x: np.ndarray) -> np.ndarray:
    """``scaler.transform(x)`` as float32, from its fitted arrays: sklearn's input checks cost ~1 ms a call on
    the search path, and they refuse an empty batch. In float32, as the arrays are stored, so a restored
    scaler gives the same numbers as the fitted one."""
    mean, std = scaler.mean_.astype(np.float32), scaler.scale_.astype(np.float32)
    return (np.asarray(x, dtype=np.float32) - mean) / std


def scaler_arrays(scaler: StandardScaler, prefix: str) -> dict[str, np.ndarray]:
    """The fitted ``mean_`` and ``scale_`` as float32 arrays named ``{prefix}mean`` / ``{prefix}scale``."""
    return {f"{prefix}mean": scaler.mean_.astype(np.float32), f"{prefix}scale": scaler.scale_.astype(np.float32)}


def restore_scaler(arrays: dict[str, np.ndarray], prefix: str) -> StandardScaler:
    """A fitted ``StandardScaler`` from :func:`scaler_arrays` output."""
    scaler = StandardScaler()
    scaler.mean_, scaler.scale_ = arrays[f"{prefix}mean"], arrays[f"{prefix}scale"]
    scaler.var_, scaler.n_features_in_ = scaler.scale_**2, len(scaler.mean_)
    return scaler


def fit_ridge(x: np.ndarray, y: np.ndarray, alpha: float, sample_weight: np.ndarray | None = None) -> Ridge:
    """Ridge regression in float64 (the normal equations lose too much in float32) with an intercept."""
    return Ridge(alpha=alpha, copy_X=False).fit(x.astype(np.float64), y.astype(np.float64), sample_weight=sample_weight)
