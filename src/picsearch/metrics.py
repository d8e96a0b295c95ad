"""Every yardstick in one place: pair metrics (RMSE, MAE, Kendall tau on the expert and crowd protocols) and
retrieval metrics.

Retrieval has one convention: the 1-based rank of each query's correct image (``inf`` when never returned);
Recall@K is the share with rank <= K, MRR the mean of 1/rank.
"""

from __future__ import annotations

from typing import Sequence

import numpy as np
import pandas as pd
from scipy.stats import kendalltau

from picsearch.labels import expert_protocol_rows

RECALL_KS = (1, 5, 10)


def kendall_tau_c_expert(expert: pd.DataFrame, predicted: np.ndarray) -> float:
    """Kendall tau-c between per-pair predictions (aligned with ``expert`` rows) and expert scores."""
    rows = expert_protocol_rows(expert)
    positions = expert.index.get_indexer(rows["pair_index"])
    return float(kendalltau(np.asarray(predicted)[positions], rows["expert_score"], variant="c").statistic)


def kendall_tau_b_crowd(true_frac: np.ndarray, predicted: np.ndarray) -> float:
    """Kendall tau-b between predictions and the crowd's ``true_frac`` on the same pairs."""
    return float(kendalltau(predicted, true_frac, variant="b").statistic)


def pair_metrics(expert: pd.DataFrame, pairs: pd.DataFrame, predicted: np.ndarray) -> dict[str, float]:
    """RMSE/MAE on ``exp_mean_score``, tau_c on the expert protocol, tau_b vs crowd ``true_frac``.

    ``pairs`` are expert rows (index = ExpertAnnotations row) with ``exp_mean_score`` and ``true_frac``.
    """
    error = predicted - pairs["exp_mean_score"].to_numpy()
    crowd = pairs["true_frac"].notna().to_numpy()
    return {
        "rmse": float(np.sqrt(np.mean(error**2))),
        "mae": float(np.mean(np.abs(error))),
        "tau_c_expert": kendall_tau_c_expert(expert.loc[pairs.index], predicted),
        "tau_b_crowd": kendall_tau_b_crowd(pairs["true_frac"].to_numpy()[crowd], predicted[crowd]),
    }


def rank_of(ranking: Sequence, target) -> float:
    """1-based position of ``target`` in ``ranking``, or ``inf`` when it is absent."""
    found = np.flatnonzero(np.asarray(ranking) == target)
    return float(found[0] + 1) if found.size else float("inf")


def ranks_of_targets(scores: np.ndarray, targets: np.ndarray) -> np.ndarray:
    """1-based rank of column ``targets[i]`` in row ``i`` of ``scores`` (higher is better; ties count against)."""
    own = scores[np.arange(len(targets)), targets]
    return (scores > own[:, None]).sum(axis=1) + (scores == own[:, None]).sum(axis=1)


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


def summarize(ranks: Sequence[float], ks: Sequence[int] = RECALL_KS, digits: int | None = 4) -> dict:
    """``{"n_queries", "recall@K"..., "mrr", "median_rank"}`` for a list of ranks, rounded to ``digits``
    (None: unrounded, for choices made on the numbers)."""
    ranks = np.asarray(ranks, dtype=float)

    def rounded(value: float) -> float:
        return value if digits is None else round(value, digits)

    summary: dict = {"n_queries": int(len(ranks))}
    summary.update({f"recall@{k}": rounded(recall_at(ranks, k)) for k in ks})
    summary["mrr"] = rounded(mean_reciprocal_rank(ranks))
    summary["median_rank"] = median_rank(ranks)
    return summary
