"""LightGBM boosters as the relevance models fit them."""

from __future__ import annotations

from typing import Any

import lightgbm as lgb
import numpy as np

LGBM_PARAMS: dict[str, Any] = {
    "objective": "cross_entropy",  # targets in [0, 1], predictions through a sigmoid
    "learning_rate": 0.05,
    "num_leaves": 15,
    "min_child_samples": 40,
    "subsample": 0.8,
    "subsample_freq": 1,
    "colsample_bytree": 0.8,
    "reg_lambda": 1.0,
    "n_jobs": 1,  # OpenMP threads spin on a busy shared machine: one is many times faster than two here
    "verbose": -1,
    "random_state": 0,
}


def fit_lgbm(x: np.ndarray, y: np.ndarray, w: np.ndarray, n_estimators: int, **overrides: Any) -> lgb.Booster:
    """A LightGBM booster with :data:`LGBM_PARAMS` (cross-entropy on [0, 1] targets)."""
    model = lgb.LGBMRegressor(n_estimators=n_estimators, **{**LGBM_PARAMS, **overrides})
    return model.fit(x, y, sample_weight=w).booster_
