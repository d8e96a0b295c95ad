"""Training data of the relevance models: vectors, scored pairs and positive pairs, after the policy filter."""

from __future__ import annotations

from dataclasses import dataclass, replace
from typing import Iterable, Literal

import numpy as np
import pandas as pd

from picsearch.data.tables import Dataset, caption_image
from picsearch.features import DatasetFeatures
from picsearch.labels import CROWD_WEIGHT, combined_target, exp_mean_score
from picsearch.models.layout import ImageLayout
from picsearch.policy.filter import CROWD_CONFIRMED, training_filter

Target = Literal["expert", "combined"]

EXPERT_POSITIVE = 0.5
"""Expert pairs scoring at least this (mean 2.5 of 4) are positives too: +1 pt Recall@5 of the ridge map in CV."""


@dataclass(frozen=True)
class TrainingSet:
    """Vectors by name plus two tables.

    ``pairs``: ``image, query_id, target, weight, expert`` — rows models are fitted on (``expert`` marks
    rows from ExpertAnnotations; extra crowd rows have ``expert == False``); ``exp_mean_score`` and
    ``true_frac`` (NaN where the crowd did not rate) are kept for evaluation.
    ``positives``: ``image, query_id`` pairs whose caption describes the image (own, crowd-confirmed, or
    an expert pair scoring at least :data:`EXPERT_POSITIVE`).
    ``evaluation``: every expert pair with a vector, filtered or not (the standard protocol scores all of
    them; models only ever train on ``pairs``), index = ExpertAnnotations row.
    """

    image_feats: np.ndarray
    image_row: dict[str, int]
    text_feats: np.ndarray
    text_row: dict[str, int]
    layout: ImageLayout
    pairs: pd.DataFrame
    positives: pd.DataFrame
    evaluation: pd.DataFrame

    def images(self, names: Iterable[str]) -> np.ndarray:
        return self.image_feats[[self.image_row[name] for name in names]]

    def texts(self, query_ids: Iterable[str]) -> np.ndarray:
        return self.text_feats[[self.text_row[query_id] for query_id in query_ids]]

    def pair_feats(self, frame: pd.DataFrame) -> tuple[np.ndarray, np.ndarray]:
        """(image vectors, text vectors) of a table's rows."""
        return self.images(frame["image"]), self.texts(frame["query_id"])

    def positive_feats(self) -> tuple[np.ndarray, np.ndarray]:
        return self.pair_feats(self.positives)

    def restrict(self, images: set[str]) -> TrainingSet:
        """Only the pairs and positives of ``images`` (vectors stay: lookups are by name)."""
        return replace(
            self,
            pairs=self.pairs[self.pairs["image"].isin(images)].reset_index(drop=True),
            positives=self.positives[self.positives["image"].isin(images)].reset_index(drop=True),
        )



def positive_pairs(dataset: Dataset, known_texts: set[str], keep_crowd: np.ndarray) -> pd.DataFrame:
    """Own captions (query_id prefix names the image) and crowd-confirmed captions with a known text."""
    own = pd.DataFrame({"query_id": sorted(set(dataset.train["query_id"]) & known_texts)})
    own["image"] = own["query_id"].map(caption_image)
    crowd = dataset.crowd[keep_crowd]
    confirmed = crowd[(crowd["true_frac"] > CROWD_CONFIRMED) & crowd["query_id"].isin(known_texts)]
    return pd.concat([own[["image", "query_id"]], confirmed[["image", "query_id"]]]).drop_duplicates(
        ignore_index=True
    )


def build_training_set(
    dataset: Dataset,
    feats: DatasetFeatures,
    layout: ImageLayout,
    target: Target = "expert",
    crowd_weight: float = CROWD_WEIGHT,
    crowd_rows: float = 0.0,
) -> TrainingSet:
    """Training pairs after the child-content filter.

    ``target="expert"`` fits ``exp_mean_score``; ``"combined"`` blends in the crowd with ``crowd_weight``.
    ``crowd_rows > 0`` adds the crowd pairs the experts did not rate, target ``true_frac``, with that row weight.
    Pairs whose image or caption has no vector are dropped.
    """
    image_row, text_row = feats.image_row, feats.text_row
    kept = training_filter(dataset)
    every = expert_pairs(dataset, target, crowd_weight)
    every = every[every["image"].isin(image_row) & every["query_id"].isin(text_row)]
    pairs = every[kept.expert_keep[dataset.expert.index.get_indexer(every.index)]]
    if crowd_rows > 0:
        extra = _crowd_rows(dataset, kept.crowd_keep, dataset.expert, crowd_rows)
        pairs = pd.concat([pairs, extra[extra["image"].isin(image_row) & extra["query_id"].isin(text_row)]])
    positives = positive_pairs(dataset, set(text_row), kept.crowd_keep)
    high = pairs[pairs["expert"] & (pairs["exp_mean_score"] >= EXPERT_POSITIVE)]
    positives = pd.concat([positives, high[["image", "query_id"]]]).drop_duplicates(ignore_index=True)
    allowed = ~positives["image"].isin(kept.child_images) & ~positives["query_id"].isin(kept.blocked_queries)
    positives = positives[allowed & positives["image"].isin(image_row)]
    return TrainingSet(
        feats.image_vectors, image_row, feats.text_vectors, text_row, layout, pairs, positives.reset_index(drop=True), every
    )


def expert_pairs(dataset: Dataset, target: Target = "expert", crowd_weight: float = CROWD_WEIGHT) -> pd.DataFrame:
    """All expert pairs: ``image, query_id, exp_mean_score, true_frac, target, weight, expert``."""
    expert = dataset.expert
    pairs = expert[["image", "query_id"]].copy()
    pairs["exp_mean_score"] = exp_mean_score(expert).to_numpy()
    pairs = pairs.merge(dataset.crowd[["image", "query_id", "true_frac"]], on=["image", "query_id"], how="left")
    pairs["target"] = (
        combined_target(expert, dataset.crowd, crowd_weight)["target"].to_numpy()
        if target == "combined"
        else pairs["exp_mean_score"]
    )
    pairs["weight"], pairs["expert"] = 1.0, True
    pairs.index = expert.index  # keeps the link to ExpertAnnotations rows for the tau_c protocol
    return pairs


def _crowd_rows(dataset: Dataset, keep: np.ndarray, expert: pd.DataFrame, weight: float) -> pd.DataFrame:
    crowd = dataset.crowd[keep]
    rated = pd.MultiIndex.from_frame(expert[["image", "query_id"]])
    extra = crowd[~pd.MultiIndex.from_frame(crowd[["image", "query_id"]]).isin(rated)]
    rows = extra[["image", "query_id", "true_frac"]].copy()
    rows["exp_mean_score"] = np.nan
    rows["target"], rows["weight"], rows["expert"] = rows["true_frac"], weight, False
    rows.index = pd.RangeIndex(len(rows)) + (expert.index.max() + 1)
    return rows
