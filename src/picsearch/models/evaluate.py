"""Honest evaluation: out-of-fold predictions on image-disjoint splits, scored with the paper metrics."""

from __future__ import annotations

import time
from concurrent.futures import Executor, Future, ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Callable, Sequence

import numpy as np
import pandas as pd

from picsearch.metrics import pair_metrics
from picsearch.models.relevance import RelevanceModel
from picsearch.models.splits import Split, split_images
from picsearch.models.trainset import TrainingSet

ModelFactory = Callable[[], RelevanceModel]
PAIR_METRICS = ("rmse", "mae", "tau_c_expert", "tau_b_crowd")
METRICS = (*PAIR_METRICS, *(f"{name}_filtered" for name in PAIR_METRICS))
"""``*_filtered``: the same metrics on the held-out pairs the child-content filter keeps (what models train on)."""


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


def _timed_fit(factory: ModelFactory, data: TrainingSet, images: set[str]) -> tuple[RelevanceModel, float]:
    start = time.perf_counter()
    model = fit_on(factory, data, images)
    return model, time.perf_counter() - start


def start_fits(
    factory: ModelFactory, data: TrainingSet, splits: Sequence[Split], pool: Executor
) -> list[Future[tuple[RelevanceModel, float]]]:
    """Start fitting a model on each split's training images on ``pool``: (model, fit seconds) per split, in order.

    The fits share ``data`` read-only; the models seed their own generators, so a fit's result does not depend
    on what runs beside it."""
    images = data.evaluation["image"]
    return [pool.submit(_timed_fit, factory, data, split_images(images, split)[0]) for split in splits]


def collect_cv(
    fits: Sequence[Future[tuple[RelevanceModel, float]]],
    data: TrainingSet,
    expert: pd.DataFrame,
    splits: Sequence[Split],
    on_fold: Callable[[], None] | None = None,
) -> CVResult:
    """Wait for :func:`start_fits`' models and score each on its split's held-out expert pairs.

    ``splits`` index ``data.evaluation`` rows; every held-out expert pair is scored (the full protocol),
    while training uses only the filtered ``data.pairs`` of the training images (``*_filtered`` metrics score
    the held-out pairs among those).
    """
    evaluation = data.evaluation
    trained_rows = data.pairs.index[data.pairs["expert"]]
    result = CVResult(pd.Series(np.nan, index=evaluation.index))
    seconds = []
    for fit, split in zip(fits, splits, strict=True):
        model, fit_seconds = fit.result()
        seconds.append(fit_seconds)
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


def cross_validate(
    factory: ModelFactory,
    data: TrainingSet,
    expert: pd.DataFrame,
    splits: Sequence[Split],
    on_fold: Callable[[], None] | None = None,
) -> CVResult:
    """Fit on each split's training images, predict its held-out expert pairs, one split after another (see
    :func:`collect_cv`; `train` overlaps them with :func:`start_fits`)."""
    with ThreadPoolExecutor(1) as pool:
        return collect_cv(start_fits(factory, data, splits, pool), data, expert, splits, on_fold)
