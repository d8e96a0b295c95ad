"""Image-disjoint splits: every pair of one image falls on the same side."""

from __future__ import annotations

from typing import Sequence

import numpy as np
from sklearn.model_selection import GroupKFold, GroupShuffleSplit

Split = tuple[np.ndarray, np.ndarray]


def grouped_folds(images: Sequence[str], n_splits: int = 5, seed: int = 0) -> list[Split]:
    """``n_splits`` (train rows, test rows) folds, grouped by image, shuffled with ``seed``."""
    groups = np.asarray(images)
    if len(np.unique(groups)) < n_splits:
        raise ValueError(f"{n_splits} folds need at least {n_splits} distinct images, got {len(np.unique(groups))}")
    folds = GroupKFold(n_splits=n_splits, shuffle=True, random_state=seed).split(groups, groups=groups)
    return [(np.sort(train), np.sort(test)) for train, test in folds]


def grouped_holdout(images: Sequence[str], test_size: float = 0.3, seed: int = 0) -> Split:
    """One (train rows, test rows) split with about ``test_size`` of the images held out."""
    groups = np.asarray(images)
    splitter = GroupShuffleSplit(n_splits=1, test_size=test_size, random_state=seed)
    train, test = next(splitter.split(groups, groups=groups))
    return np.sort(train), np.sort(test)


def split_images(images: Sequence[str], split: Split) -> tuple[set[str], set[str]]:
    """The image sets on the train and test side of a split."""
    groups = np.asarray(images)
    return set(groups[split[0]]), set(groups[split[1]])
