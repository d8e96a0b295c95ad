"""Retrieval metrics from the 1-based rank of each query's correct image (``inf`` when never returned)."""

from __future__ import annotations

from typing import Sequence

import numpy as np

RECALL_KS = (1, 5, 10)


def rank_of(ranking: Sequence, target) -> float:
    """1-based position of ``target`` in ``ranking``, or ``inf`` when it is absent."""
    found = np.flatnonzero(np.asarray(ranking) == target)
    return float(found[0] + 1) if found.size else float("inf")


def recall_at(ranks: np.ndarray, k: int) -> float:
    """Share of queries whose correct image is among the first ``k``."""
    return float(np.mean(np.asarray(ranks) <= k)) if len(ranks) else 0.0


def mean_reciprocal_rank(ranks: np.ndarray) -> float:
    """Mean of 1/rank (0 for a correct image never returned)."""
    return float(np.mean(1.0 / np.asarray(ranks, dtype=float))) if len(ranks) else 0.0


def median_rank(ranks: np.ndarray) -> float | None:
    """Median rank; None when undefined (no queries, or more than half never found)."""
    if not len(ranks):
        return None
    value = float(np.median(np.asarray(ranks, dtype=float)))
    return value if np.isfinite(value) else None


def summarize(ranks: Sequence[float], ks: Sequence[int] = RECALL_KS) -> dict:
    """``{"n_queries", "recall@K"..., "mrr", "median_rank"}`` for a list of ranks."""
    ranks = np.asarray(ranks, dtype=float)
    summary: dict = {"n_queries": int(len(ranks))}
    summary.update({f"recall@{k}": round(recall_at(ranks, k), 4) for k in ks})
    summary["mrr"] = round(mean_reciprocal_rank(ranks), 4)
    summary["median_rank"] = median_rank(ranks)
    return summary
