"""Training targets from the human judgements, and the expert evaluation protocol (metrics: :mod:`picsearch.metrics`)."""

from __future__ import annotations

import numpy as np
import pandas as pd

from picsearch.data.tables import EXPERT_SCORES, caption_image

MINOR_ASPECTS = 1.0 / 3.0
""":func:`exp_mean_score` of an expert score of 2, "describes minor aspects of the image but does not describe
the image" (1: not at all; 3: with minor mistakes; 4: describes it). A score below it is nearer "not at all"."""

CROWD_WEIGHT = 0.25
"""Default weight of the crowd's ``true_frac`` in :func:`combined_target` (chosen by CV, see the model report)."""


def exp_mean_score(expert: pd.DataFrame) -> pd.Series:
    """(mean of the three expert scores - 1) / 3, in [0, 1]."""
    return (expert[EXPERT_SCORES].mean(axis=1) - 1.0) / 3.0


def majority_vote(expert: pd.DataFrame) -> pd.Series:
    """Score two or three experts agree on, scaled to [0, 1]; NaN where all three disagree."""
    scores = expert[EXPERT_SCORES].to_numpy()
    mode = np.full(len(scores), np.nan)
    for i, row in enumerate(scores):
        values, counts = np.unique(row, return_counts=True)
        if counts.max() >= 2:
            mode[i] = (values[counts.argmax()] - 1.0) / 3.0
    return pd.Series(mode, index=expert.index, name="majority_vote")


def agreement(expert: pd.DataFrame) -> pd.DataFrame:
    """Per-pair agreement: score range, standard deviation, and whether all three agree."""
    scores = expert[EXPERT_SCORES]
    return pd.DataFrame(
        {
            "range": scores.max(axis=1) - scores.min(axis=1),
            "std": scores.std(axis=1, ddof=0),
            "unanimous": scores.nunique(axis=1) == 1,
        },
        index=expert.index,
    )


def combined_target(expert: pd.DataFrame, crowd: pd.DataFrame, crowd_weight: float = CROWD_WEIGHT) -> pd.DataFrame:
    """Expert pairs with a target blending experts and crowd where both rated the pair.

    ``target = (1 - w) * exp_mean_score + w * true_frac`` on pairs the crowd also rated, and
    ``exp_mean_score`` elsewhere. Returns ``image, query_id, target, has_crowd``.
    """
    frame = expert[["image", "query_id"]].copy()
    frame["exp_mean_score"] = exp_mean_score(expert).to_numpy()
    merged = frame.merge(crowd[["image", "query_id", "true_frac"]], on=["image", "query_id"], how="left")
    has_crowd = merged["true_frac"].notna()
    merged["target"] = np.where(
        has_crowd,
        (1 - crowd_weight) * merged["exp_mean_score"] + crowd_weight * merged["true_frac"],
        merged["exp_mean_score"],
    )
    merged["has_crowd"] = has_crowd
    return merged[["image", "query_id", "target", "has_crowd"]]


def expert_protocol_rows(expert: pd.DataFrame) -> pd.DataFrame:
    """The standard Flickr8k-Expert evaluation rows.

    Pairs whose caption was written for that very image are dropped (158 of 5822 here), and
    each remaining pair appears once per expert, with that expert's score (5664 x 3 = 16,992).
    Returns ``image, query_id, pair_index, expert_score``; ``pair_index`` points into ``expert``.
    """
    keep = expert[expert["query_id"].map(caption_image) != expert["image"]]
    long = keep.reset_index(names="pair_index").melt(
        id_vars=["pair_index", "image", "query_id"], value_vars=EXPERT_SCORES, value_name="expert_score"
    )
    return long.sort_values(["pair_index", "variable"]).drop(columns="variable").reset_index(drop=True)
