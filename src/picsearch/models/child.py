"""Child-image detector: logistic regression on image features, weak labels from captions.

An image is labelled a child image when the policy blocks one of its own captions or a crowd-confirmed
caption (:func:`picsearch.policy.filter.child_images`). The threshold keeps out-of-fold recall >=
``target_recall``; every false alarm hides a harmless photo, so the regularization is chosen for the best
out-of-fold precision at that recall. Both choices use repeated folds, which steadies them.

Precision at that recall is capped by the weak labels, not the model: the lowest-scored "child" images are
mostly captioning noise (adults called "girls", a teenager called "boy", a child far in the background),
and the threshold must go below them; other features and models scored within +-0.01 of this one in CV.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Sequence

import numpy as np
from sklearn.linear_model import LogisticRegression
from sklearn.metrics import roc_auc_score
from sklearn.model_selection import StratifiedKFold

from picsearch.models.base import Exported, Standardizer
from picsearch.models.matching import ImageLayout

TARGET_RECALL = 0.99
C_GRID = (0.001, 0.003, 0.01, 0.03)


def threshold_for_recall(probs: np.ndarray, labels: np.ndarray, recall: float) -> float:
    """The highest threshold t with recall(probs >= t) >= ``recall``."""
    positives = np.sort(probs[labels.astype(bool)])[::-1]
    if len(positives) == 0:
        raise ValueError("no positive (child) images to choose a threshold from")
    needed = int(np.ceil(recall * len(positives)))
    return float(positives[needed - 1])


def detection_metrics(probs: np.ndarray, labels: np.ndarray, threshold: float) -> dict[str, float]:
    """AUC, precision, recall and share of images hidden at ``threshold``."""
    labels = labels.astype(bool)
    flagged = probs >= threshold
    both_classes = 0 < labels.sum() < len(labels)
    return {
        "auc": float(roc_auc_score(labels, probs)) if both_classes else float("nan"),
        "precision": float((flagged & labels).sum() / max(flagged.sum(), 1)),
        "recall": float((flagged & labels).sum() / max(labels.sum(), 1)),
        "hidden_share": float(flagged.mean()),
        "n_images": int(len(labels)),
        "n_child": int(labels.sum()),
    }


@dataclass
class ChildDetector:
    """P(child | image features); ``threshold`` flags images to hide."""

    layout: ImageLayout
    c: float = 0.01
    threshold: float = 0.5

    def fit(self, image_feats: np.ndarray, labels: np.ndarray) -> ChildDetector:
        x = self.layout.inputs(image_feats)
        self.scaler = Standardizer().fit(x)
        model = LogisticRegression(C=self.c, max_iter=2000, class_weight="balanced")
        model.fit(self.scaler.transform(x), labels.astype(int))
        self.coef, self.intercept = model.coef_[0].astype(np.float32), float(model.intercept_[0])
        return self

    def probability(self, image_feats: np.ndarray) -> np.ndarray:
        logits = self.scaler.transform(self.layout.inputs(image_feats)) @ self.coef + self.intercept
        return 1.0 / (1.0 + np.exp(-logits))

    def is_child(self, image_feats: np.ndarray) -> np.ndarray:
        return self.probability(image_feats) >= self.threshold

    def export(self) -> Exported:
        params = {"kind": "child_logreg", "layout": self.layout.to_json(), "c": self.c, "threshold": self.threshold,
                  "intercept": self.intercept}
        return Exported(params, {"coef": self.coef, **self.scaler.export("x_")})

    @classmethod
    def restore(cls, exported: Exported) -> ChildDetector:
        p = exported.params
        detector = cls(ImageLayout.from_json(p["layout"]), p["c"], p["threshold"])
        detector.coef, detector.intercept = exported.arrays["coef"], p["intercept"]
        detector.scaler = Standardizer.restore(exported.arrays, "x_")
        return detector


def out_of_fold(
    layout: ImageLayout, feats: np.ndarray, labels: np.ndarray, c: float, folds: int, seed: int, repeats: int = 1
) -> tuple[np.ndarray, list[np.ndarray]]:
    """Out-of-fold child probabilities, one row per shuffling of the folds (``repeats`` x n), and the test rows
    of every fold. One row per image: each image is its own group."""
    probs = np.zeros((repeats, len(labels)))
    tests = []
    for repeat in range(repeats):
        splitter = StratifiedKFold(folds, shuffle=True, random_state=seed + repeat)
        for train, test in splitter.split(feats, labels):
            probs[repeat, test] = ChildDetector(layout, c).fit(feats[train], labels[train]).probability(feats[test])
            tests.append(test)
    return probs, tests


def cv_summary(probs: np.ndarray, labels: np.ndarray, tests: list[np.ndarray], recall: float) -> dict[str, float]:
    """Threshold = the lowest of the repetitions' out-of-fold thresholds for ``recall`` (every repetition keeps
    that recall); the metrics at that threshold averaged over repetitions; the spread of the threshold each
    single fold would choose, and the lowest recall a single fold gets at the chosen threshold."""
    threshold = float(min(threshold_for_recall(p, labels, recall) for p in probs))
    per_repeat = [detection_metrics(p, labels, threshold) for p in probs]
    folds_per_repeat = len(tests) // len(probs)
    fold_probs = [(probs[i // folds_per_repeat, t], labels[t]) for i, t in enumerate(tests)]
    per_fold = np.array([threshold_for_recall(p, fold_labels, recall) for p, fold_labels in fold_probs])
    fold_recall = [detection_metrics(p, fold_labels, threshold)["recall"] for p, fold_labels in fold_probs]
    summary = {key: float(np.mean([m[key] for m in per_repeat])) for key in per_repeat[0]}
    return {
        **summary, "threshold": threshold, "fold_threshold_min": float(per_fold.min()),
        "fold_threshold_max": float(per_fold.max()), "fold_threshold_std": float(per_fold.std()),
        "fold_recall_min": float(min(fold_recall)),
    }


@dataclass
class ChildReport:
    """The fitted detector and its cross-validated quality."""

    detector: ChildDetector
    cv: dict[str, float]
    grid: dict[str, dict[str, float]]


def train_child_detector(
    layout: ImageLayout,
    feats: np.ndarray,
    labels: np.ndarray,
    target_recall: float = TARGET_RECALL,
    c_grid: Sequence[float] = C_GRID,
    folds: int = 5,
    seed: int = 0,
    repeats: int = 3,
) -> ChildReport:
    """Choose C and the threshold by out-of-fold precision at ``target_recall``, then refit on all images.

    Repeating the folds ``repeats`` times with other shufflings steadies both choices (see :func:`cv_summary`)."""
    labels = labels.astype(bool)
    grid = {}
    for c in c_grid:
        probs, tests = out_of_fold(layout, feats, labels, c, folds, seed, repeats)
        grid[str(c)] = cv_summary(probs, labels, tests, target_recall)
    best = max(grid, key=lambda c: (grid[c]["precision"], grid[c]["auc"]))
    detector = ChildDetector(layout, float(best), grid[best]["threshold"]).fit(feats, labels)
    return ChildReport(detector, grid[best], grid)
