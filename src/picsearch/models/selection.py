"""What `train` chooses among: the candidate relevance models, the matchers, the training-data options and the
joint-space weightings, and the rules that choose."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

from picsearch.data.tables import Dataset
from picsearch.features import DatasetFeatures
from picsearch.models.concat import ConcatLGBM, ConcatMLP, ConcatRidge
from picsearch.models.evaluate import ModelFactory
from picsearch.models.layout import ImageLayout
from picsearch.models.matching import (
    CaptionTransferMatcher, ClassBridgeMatcher, ImageTransferMatcher, MatcherFactory, MatcherMemo, RidgeMatcher,
    SharedSpaceMatcher, TwoTowerMatcher,
)
from picsearch.models.matching_head import MatchingHead
from picsearch.models.trainset import Target, TrainingSet, build_training_set


@dataclass(frozen=True)
class Encoders:
    """Which encoders made the features: registry names, ids, image layout, class-name vectors if any."""

    image_name: str
    image_id: str
    text_name: str
    text_id: str
    layout: ImageLayout
    class_texts: np.ndarray | None = None

    @property
    def shared_space(self) -> bool:
        """Both ids name the two towers of one CLIP model."""
        return self.image_id.startswith("clip-image-") and self.image_id.replace("-image-", "-text-", 1) == self.text_id


@dataclass(frozen=True)
class TrainingData:
    """Which target the models fit and with what row weight crowd pairs the experts did not rate join in."""

    target: Target = "expert"
    crowd_rows: float = 0.0

    def build(self, dataset: Dataset, feats: DatasetFeatures, layout: ImageLayout) -> TrainingSet:
        """The training set of this option, after the child-content filter."""
        return build_training_set(dataset, feats, layout, self.target, crowd_rows=self.crowd_rows)


TRAINING_DATA_OPTIONS = {
    "expert": TrainingData(),
    "combined": TrainingData(target="combined"),
    "expert+crowd_rows": TrainingData(crowd_rows=0.3),
}


def matcher_factories(encoders: Encoders) -> dict[str, MatcherFactory]:
    """The matching models that apply to these encoders."""
    layout = encoders.layout
    factories: dict[str, MatcherFactory] = {
        "ridge_map": lambda: RidgeMatcher(layout),
        "two_tower": lambda: TwoTowerMatcher(layout),
        "caption_transfer": lambda: CaptionTransferMatcher(layout),
        "image_transfer": lambda: ImageTransferMatcher(layout),
    }
    if layout.probs is not None and encoders.class_texts is not None:
        factories["class_bridge"] = lambda: ClassBridgeMatcher(layout, encoders.class_texts)
    if encoders.shared_space:
        factories["shared_space"] = lambda: SharedSpaceMatcher(layout)
    return factories


def candidate_models(encoders: Encoders) -> dict[str, ModelFactory]:
    """Every relevance model compared by `train`; the matching heads share one :class:`MatcherMemo`."""
    layout, matchers, memo = encoders.layout, matcher_factories(encoders), MatcherMemo()
    return {
        "concat_ridge": lambda: ConcatRidge(layout),
        "concat_mlp": lambda: ConcatMLP(layout),
        "concat_lgbm": lambda: ConcatLGBM(layout),
        "matching_head": lambda: MatchingHead(matchers, memo=memo),
    }


def lowest_rmse(summaries: dict[str, dict[str, Any]], folds: int) -> str:
    """The one-standard-error rule on CV RMSE (models and training-data options are chosen so): of the names
    whose RMSE is within one standard error (fold spread / sqrt(folds)) of the lowest, the first listed, which
    is the simplest model or the default training data. A choice inside the error is noise, and flips with the
    thread count: the data options ``expert`` and ``combined`` differ by 2.5e-5, against an error of 0.0036."""
    best = summaries[min(summaries, key=lambda name: summaries[name]["rmse"])]
    limit = best["rmse"] + best["rmse_std"] / np.sqrt(folds)
    return next(name for name, summary in summaries.items() if summary["rmse"] <= limit)


def joint_options(names: list[str]) -> dict[str, dict[str, float]]:
    """Candidate weightings of the joint space: each matcher alone, all equal, and all but each one."""
    options = {name: {name: 1.0} for name in names}
    options["all"] = {name: 1.0 for name in names}
    if len(names) > 2:
        options.update({f"all-{drop}": {n: 1.0 for n in names if n != drop} for drop in names})
    return options


def choose_joint(summary: dict[str, dict[str, float]], n_queries: int) -> str:
    """The one-standard-error rule: of the options whose Recall@5 is within one (binomial) standard error of
    the best, the one with the fewest dimensions, then the best MRR. Every dimension is paid for in index
    size and search time, and differences inside the error are noise."""
    top = max(s["recall@5"] for s in summary.values())
    error = np.sqrt(top * (1 - top) / n_queries)
    near = [option for option, s in summary.items() if s["recall@5"] >= top - error]
    return min(near, key=lambda option: (summary[option]["dims"], -summary[option]["mrr"]))
