"""Training-data filter: which images show children, and which pairs training must drop.

Two rules, applied to the expert and crowd tables (one row = one image/caption pair):

- **text rule**: the pair's caption text is blocked by :func:`picsearch.policy.check`
  (captions come from ``train_dataset.csv`` and ``test_queries.csv``; a crowd caption with no known
  text cannot be judged by this rule);
- **image rule**: the pair's image is a *child image*. An image is a child image when
  (a) any caption written for it is blocked (a caption's ``query_id`` prefix names the image it was
  written for), (b) the crowd confirmed a blocked caption for it (``true_frac`` > 0.5), or (c) the experts
  confirmed one (mean of the three scores >= 3, "describes the image with minor errors" or better).

Disagreements are kept on the safe side: an image whose confirmed captions mostly call its people adults
("man", "woman") but one says "boy" or "girl" is still a child image. The captions of unseen photos carry the
same noise, and the detector's recall is measured against them.

:class:`FilterResult` keeps boolean keep-masks aligned with the tables' rows, and counts how many pairs
each rule removes (text only, image only, both) and how many images lose all their pairs.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd

from picsearch.data.tables import EXPERT_SCORES, Dataset, caption_image
from picsearch.policy import is_blocked

CROWD_CONFIRMED = 0.5
"""A crowd pair with ``true_frac`` above this says the caption describes the image."""
EXPERT_CONFIRMED = 3.0
"""An expert pair whose mean score is at least this says the caption describes the image."""


@dataclass(frozen=True)
class RuleCounts:
    """What the filter removes from one table of pairs."""

    total: int
    text_only: int
    image_only: int
    both: int
    images_total: int
    images_removed: int
    """Images of this table left with no pair at all."""

    @property
    def removed(self) -> int:
        return self.text_only + self.image_only + self.both

    @property
    def remaining(self) -> int:
        return self.total - self.removed


@dataclass(frozen=True)
class FilterResult:
    """Keep-masks for the expert and crowd rows, with the sets and counts behind them."""

    blocked_queries: frozenset[str]
    child_images: frozenset[str]
    expert_keep: np.ndarray
    crowd_keep: np.ndarray
    expert: RuleCounts
    crowd: RuleCounts

    def counts_table(self) -> pd.DataFrame:
        """One row per table (expert, crowd): total, removed by each rule, remaining, images."""
        rows = {name: {**vars(c), "removed": c.removed, "remaining": c.remaining} for name, c in self.tables()}
        return pd.DataFrame.from_dict(rows, orient="index")

    def tables(self) -> list[tuple[str, RuleCounts]]:
        """(name, counts) for the expert and crowd tables."""
        return [("expert", self.expert), ("crowd", self.crowd)]


def blocked_queries(dataset: Dataset) -> set[str]:
    """query_ids (train and test captions) whose text the policy blocks."""
    texts = dataset.query_texts()
    verdicts = {text: is_blocked(text) for text in set(texts.values())}
    return {qid for qid, text in texts.items() if verdicts[text]}


def _child_images(dataset: Dataset, blocked: set[str]) -> set[str]:
    own = {caption_image(qid) for qid in blocked}
    crowd, expert = dataset.crowd, dataset.expert
    by_crowd = crowd["query_id"].isin(blocked) & (crowd["true_frac"] > CROWD_CONFIRMED)
    by_experts = expert["query_id"].isin(blocked) & (expert[EXPERT_SCORES].mean(axis=1) >= EXPERT_CONFIRMED)
    return own | set(crowd.loc[by_crowd, "image"]) | set(expert.loc[by_experts, "image"])


def child_images(dataset: Dataset) -> set[str]:
    """Images shown to contain children: a blocked own caption, or a blocked caption the crowd or the experts
    confirmed for the image."""
    return _child_images(dataset, blocked_queries(dataset))


def _counts(frame: pd.DataFrame, text_hit: np.ndarray, image_hit: np.ndarray) -> RuleCounts:
    keep = ~(text_hit | image_hit)
    images = frame["image"]
    return RuleCounts(
        total=len(frame),
        text_only=int((text_hit & ~image_hit).sum()),
        image_only=int((image_hit & ~text_hit).sum()),
        both=int((text_hit & image_hit).sum()),
        images_total=images.nunique(),
        images_removed=images.nunique() - images[keep].nunique(),
    )


def _apply(frame: pd.DataFrame, blocked: set[str], children: set[str]) -> tuple[np.ndarray, RuleCounts]:
    text_hit = frame["query_id"].isin(blocked).to_numpy()
    image_hit = frame["image"].isin(children).to_numpy()
    return ~(text_hit | image_hit), _counts(frame, text_hit, image_hit)


def training_filter(dataset: Dataset) -> FilterResult:
    """Which expert and crowd pairs training keeps after the child-content rules, and why the others go."""
    blocked = blocked_queries(dataset)
    children = _child_images(dataset, blocked)
    expert_keep, expert_counts = _apply(dataset.expert, blocked, children)
    crowd_keep, crowd_counts = _apply(dataset.crowd, blocked, children)
    return FilterResult(
        blocked_queries=frozenset(blocked),
        child_images=frozenset(children),
        expert_keep=expert_keep,
        crowd_keep=crowd_keep,
        expert=expert_counts,
        crowd=crowd_counts,
    )
