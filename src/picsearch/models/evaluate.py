"""Honest evaluation: out-of-fold predictions on image-disjoint splits, the paper metrics, retrieval estimates."""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import Callable, Sequence

import numpy as np
import pandas as pd

from picsearch.labels import kendall_tau_b_crowd, kendall_tau_c_expert
from picsearch.models.heads import RelevanceModel
from picsearch.models.splits import Split, split_images
from picsearch.models.trainset import TrainingSet

ModelFactory = Callable[[], RelevanceModel]
PAIR_METRICS = ("rmse", "mae", "tau_c_expert", "tau_b_crowd")
METRICS = (*PAIR_METRICS, *(f"{name}_filtered" for name in PAIR_METRICS))
"""``*_filtered``: the same metrics on the held-out pairs the child-content filter keeps (what models train on)."""


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


@dataclass
class CVResult:
    """Out-of-fold predictions for the expert rows, and metrics per fold."""

    predictions: pd.Series
    folds: list[dict[str, float]] = field(default_factory=list)
    fit_seconds: float = 0.0
    models: list[RelevanceModel] = field(default_factory=list)
    """The fitted model of each split, in order (reused by the retrieval estimate)."""

    def summary(self) -> dict[str, float]:
        """Mean and ``*_std`` over folds for each metric, plus mean fit seconds."""
        out: dict[str, float] = {}
        for name in METRICS:
            values = [fold[name] for fold in self.folds]
            out[name], out[f"{name}_std"] = float(np.mean(values)), float(np.std(values))
        out["fit_seconds"] = self.fit_seconds
        return out


def fit_on(factory: ModelFactory, data: TrainingSet, images: set[str]) -> RelevanceModel:
    """A model fitted on the pairs and positives of ``images`` only."""
    return factory().fit(data.restrict(images))


def cross_validate(
    factory: ModelFactory,
    data: TrainingSet,
    expert: pd.DataFrame,
    splits: Sequence[Split],
    on_fold: Callable[[], None] | None = None,
) -> CVResult:
    """Fit on each split's training images, predict its held-out expert pairs.

    ``splits`` index ``data.evaluation`` rows; every held-out expert pair is scored (the full protocol),
    while training uses only the filtered ``data.pairs`` of the training images (``*_filtered`` metrics score
    the held-out pairs among those).
    """
    evaluation = data.evaluation
    trained_rows = data.pairs.index[data.pairs["expert"]]
    result = CVResult(pd.Series(np.nan, index=evaluation.index))
    seconds = []
    for split in splits:
        train_images, test_images = split_images(evaluation["image"], split)
        start = time.perf_counter()
        model = fit_on(factory, data, train_images)
        seconds.append(time.perf_counter() - start)
        result.models.append(model)
        held = evaluation.iloc[split[1]]
        predicted = model.predict(*data.pair_feats(held))
        result.predictions.loc[held.index] = predicted
        kept = held.index.isin(trained_rows)
        filtered = {f"{k}_filtered": v for k, v in pair_metrics(expert, held[kept], predicted[kept]).items()}
        result.folds.append({**pair_metrics(expert, held, predicted), **filtered})
        if on_fold is not None:
            on_fold()
    result.fit_seconds = float(np.mean(seconds))
    return result


def recall_at(ranks: np.ndarray, k: int) -> float:
    """Share of queries whose correct item is among the first ``k`` (ranks are 0-based)."""
    return float(np.mean(ranks < k))


def ranks_of_targets(scores: np.ndarray, targets: np.ndarray) -> np.ndarray:
    """0-based rank of ``targets[i]`` in row ``i`` of ``scores`` (higher is better; ties count against)."""
    own = scores[np.arange(len(targets)), targets]
    return (scores > own[:, None]).sum(axis=1) + (scores == own[:, None]).sum(axis=1) - 1


def retrieval_ranks(
    joint_image: np.ndarray,
    joint_text: np.ndarray,
    targets: np.ndarray,
    rerank: Callable[[np.ndarray, np.ndarray], np.ndarray] | None = None,
    candidates: int = 20,
) -> np.ndarray:
    """Rank of each query's target image: by joint cosine, then the top ``candidates`` reranked by score.

    ``rerank(image_rows, query_row)`` scores candidate images for one query; reranked images precede the rest.
    """
    sims = joint_text @ joint_image.T
    if rerank is None:
        return ranks_of_targets(sims, targets)
    order = np.argsort(-sims, axis=1, kind="stable")
    ranks = np.empty(len(targets), dtype=np.int64)
    for query, target in enumerate(targets):
        top = order[query, :candidates]
        reranked = top[np.argsort(-rerank(top, np.full(len(top), query)), kind="stable")]
        full = np.concatenate([reranked, order[query, candidates:]])
        ranks[query] = int(np.flatnonzero(full == target)[0])
    return ranks


def retrieval_summary(ranks: np.ndarray) -> dict[str, float]:
    """Recall@1/5/10 and MRR from 0-based ranks."""
    return {
        "recall@1": recall_at(ranks, 1),
        "recall@5": recall_at(ranks, 5),
        "recall@10": recall_at(ranks, 10),
        "mrr": float(np.mean(1.0 / (ranks + 1))),
    }
