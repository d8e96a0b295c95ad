"""The operator's review desk over one index folder: the queue, decisions, and the flags listing.

The queue holds the photos the detector flagged that nobody has reviewed in their current version,
the most likely harmless first (lowest child probability). Near-duplicates (cosine of the stored
image features at or above ``duplicate_cosine``) form one group, placed where its most likely
harmless member would be, so a reviewer sees a burst of the same scene together.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
from scipy.sparse import coo_matrix
from scipy.sparse.csgraph import connected_components

from picsearch.data.files import CheckedFile
from picsearch.index.gallery import GalleryIndex
from picsearch.index.review import Moderation, Review, ReviewLog, bind

DUPLICATE_COSINE = 0.95
BLOCK_ROWS = 2048  # rows of the pairwise cosine matrix computed at once


@dataclass(frozen=True)
class QueueItem:
    """One photo waiting for review."""

    id: str
    path: str
    probability: float
    group: int


@dataclass(frozen=True)
class ReviewQueue:
    """Pending photos in review order, and how many there are."""

    items: list[QueueItem]
    groups: int
    reviewed: int

    @property
    def remaining(self) -> int:
        return len(self.items)

    def to_json(self) -> dict:
        return {
            "remaining": self.remaining,
            "groups": self.groups,
            "reviewed": self.reviewed,
            "items": [vars(item) for item in self.items],
        }


def duplicate_groups(vectors: np.ndarray, cosine: float) -> np.ndarray:
    """Group label per row: rows joined by a chain of pairs with cosine >= ``cosine`` share one label."""
    n = len(vectors)
    if n == 0:
        return np.zeros(0, dtype=np.int64)
    x = np.asarray(vectors, dtype=np.float32)
    x = x / np.maximum(np.linalg.norm(x, axis=1, keepdims=True), 1e-12)
    pairs = []
    for start in range(0, n, BLOCK_ROWS):
        sims = x[start : start + BLOCK_ROWS] @ x.T
        rows, cols = np.nonzero(sims >= cosine)
        pairs.append((rows + start, cols))
    rows = np.concatenate([r for r, _ in pairs])
    cols = np.concatenate([c for _, c in pairs])
    graph = coo_matrix((np.ones(len(rows), dtype=np.int8), (rows, cols)), shape=(n, n))
    return connected_components(graph, directed=False)[1]


def queue_order(probability: np.ndarray, groups: np.ndarray) -> np.ndarray:
    """Positions in review order: groups by their lowest probability, members by probability."""
    lowest = {}
    for group, p in zip(groups.tolist(), probability.tolist()):
        lowest[group] = min(p, lowest.get(group, p))
    keys = np.array([lowest[g] for g in groups.tolist()])
    return np.lexsort((probability, groups, keys))


class ReviewDesk:
    """Review an index: its queue, decisions (appended to its log), and every photo's current state."""

    def __init__(self, index: GalleryIndex, log: ReviewLog) -> None:
        self.index = index
        self.log = log
        self.moderation = Moderation(index, log)
        self._flagged = np.flatnonzero(index.child)
        self._groups: dict[float, np.ndarray] = {}  # cosine -> group per detector-flagged row, computed once

    @classmethod
    def open(cls, folder: Path) -> "ReviewDesk":
        """The desk of the index at ``folder`` (its log is ``folder/reviews.jsonl``)."""
        return cls(GalleryIndex.load(Path(folder)), ReviewLog.of_index(Path(folder)))

    def queue(self, duplicate_cosine: float = DUPLICATE_COSINE) -> ReviewQueue:
        """Detector-flagged photos without a decision on their current content, most likely harmless first."""
        self.moderation.refresh()
        reviewed = self.moderation.reviews
        waiting = self._pending()
        pending = self._flagged[waiting]
        probability = np.asarray(self.index.child_prob, dtype=np.float64)[pending]
        groups = self._duplicate_groups(duplicate_cosine)[waiting]
        order = queue_order(probability, groups)
        labels = {}  # renumber groups 1.. in queue order
        items = []
        for pos in order:
            row = int(pending[pos])
            group = labels.setdefault(int(groups[pos]), len(labels) + 1)
            items.append(QueueItem(self.index.ids[row], self.index.paths[row], float(probability[pos]), group))
        return ReviewQueue(items, len(labels), reviewed=len(reviewed))

    def progress(self) -> tuple[int, int]:
        """(detector-flagged photos still waiting for a decision on their current content, photos reviewed);
        cheap, unlike :meth:`queue`."""
        self.moderation.refresh()
        return int(self._pending().sum()), len(self.moderation.reviews)

    def _pending(self) -> np.ndarray:
        """Mask over the detector-flagged rows: no current decision."""
        return self.moderation.decisions[self._flagged] < 0

    def _duplicate_groups(self, cosine: float) -> np.ndarray:
        """Near-duplicate groups of all detector-flagged photos (stable while decisions come in)."""
        if cosine not in self._groups:
            self._groups[cosine] = duplicate_groups(np.asarray(self.index.rerank[self._flagged]), cosine)
        return self._groups[cosine]

    def decide(self, image_id: str, decision: str, why: str, who: str) -> Review:
        """Record a decision bound to the photo's current content; it applies to search at once."""
        review = bind(self.index, image_id, decision, why, who)
        self.log.append(review)
        return review

    def path_of(self, image_id: str) -> Path:
        """Absolute path of any indexed photo, flagged or not."""
        row = self.index.rows().get(image_id)
        if row is None:
            raise KeyError(f"unknown image id {image_id!r}")
        return self.index.absolute_path(row)

    def checked_file(self, image_id: str) -> CheckedFile:
        """Any indexed photo's file, flagged or not, while it holds the bytes the index checked (for the
        review page's thumbnails); KeyError otherwise (:class:`UncheckedFileError` for a changed file)."""
        row = self.index.rows().get(image_id)
        if row is None:
            raise KeyError(f"unknown image id {image_id!r}")
        return self.index.checked_file(row)

    def flags(self) -> list[dict]:
        """One record per indexed photo: ``{"id", "path", "flagged", "probability", "review"}``."""
        self.moderation.refresh()
        flags, reviews = self.moderation.hidden(), self.moderation.reviews
        return [
            {
                "id": image_id,
                "path": str(self.index.absolute_path(row)),
                "flagged": bool(flags[row]),
                "probability": round(float(self.index.child_prob[row]), 6),
                "review": _review_json(reviews.get(row)),
            }
            for row, image_id in enumerate(self.index.ids)
        ]


def _review_json(review: Review | None) -> dict | None:
    if review is None:
        return None
    return {"decision": review.decision, "who": review.who, "when": review.when, "why": review.why}


__all__ = ["DUPLICATE_COSINE", "QueueItem", "ReviewDesk", "ReviewQueue", "duplicate_groups", "queue_order"]
