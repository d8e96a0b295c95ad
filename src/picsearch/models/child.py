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
from typing import Any, Sequence

import numpy as np
import pandas as pd
from sklearn.base import BaseEstimator, ClassifierMixin
from sklearn.linear_model import LogisticRegression
from sklearn.metrics import precision_recall_curve, roc_auc_score
from sklearn.model_selection import StratifiedKFold, cross_val_predict

from picsearch.data.tables import Dataset
from picsearch.features import DatasetFeatures
from picsearch.models.export import Exported
from picsearch.models.layout import ImageLayout, params_from_json, params_to_json
from picsearch.models.linear import fit_scaler, restore_scaler, scale, scaler_arrays
from picsearch.policy import is_blocked
from picsearch.policy.filter import child_images

TARGET_RECALL = 0.99
CHILD_PREDICTIONS = "child_cv_predictions.csv"  # image, label, out-of-fold probability; written by training
C_GRID = (0.001, 0.003, 0.01, 0.03)


def threshold_for_recall(probs: np.ndarray, labels: np.ndarray, recall: float) -> float:
    """The highest threshold t with recall(probs >= t) >= ``recall``."""
    if not np.any(labels):
        raise ValueError("no positive (child) images to choose a threshold from")
    _, recalls, thresholds = precision_recall_curve(labels.astype(bool), probs)
    return float(thresholds[recalls[:-1] >= recall].max())


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


class ChildDetector(ClassifierMixin, BaseEstimator):
    """P(child | image features): standardized features, balanced logistic regression; ``threshold`` flags
    images to hide."""

    kind = "child_logreg"

    def __init__(self, layout: ImageLayout, c: float = 0.01, threshold: float = 0.5) -> None:
        self.layout, self.c, self.threshold = layout, c, threshold

    def fit(self, image_feats: np.ndarray, labels: np.ndarray) -> ChildDetector:
        x = self.layout.inputs(image_feats)
        self.scaler_ = fit_scaler(x)
        model = LogisticRegression(C=self.c, max_iter=2000, class_weight="balanced")
        model.fit(scale(self.scaler_, x), np.asarray(labels).astype(int))
        self.classes_ = model.classes_
        self.coef_, self.intercept_ = model.coef_[0].astype(np.float32), float(model.intercept_[0])
        return self

    def probability(self, image_feats: np.ndarray) -> np.ndarray:
        """P(child) per image row."""
        logits = scale(self.scaler_, self.layout.inputs(image_feats)) @ self.coef_ + self.intercept_
        return 1.0 / (1.0 + np.exp(-logits))

    def predict_proba(self, image_feats: np.ndarray) -> np.ndarray:
        """scikit-learn's two columns, P(not child) and P(child)."""
        p = self.probability(image_feats)
        return np.column_stack([1.0 - p, p])

    def is_child(self, image_feats: np.ndarray) -> np.ndarray:
        """True for images at or above ``threshold`` (to hide)."""
        return self.probability(image_feats) >= self.threshold

    predict = is_child  # scikit-learn's name (``cross_val_predict`` requires one)

    def export(self) -> Exported:
        params = {"kind": self.kind, **params_to_json(self.get_params()), "intercept": self.intercept_}
        return Exported(params, {"coef": self.coef_, **scaler_arrays(self.scaler_, "x_")})

    @classmethod
    def restore(cls, exported: Exported) -> ChildDetector:
        detector = cls(**params_from_json(exported.params, "intercept"))
        detector.coef_, detector.intercept_ = exported.arrays["coef"], exported.params["intercept"]
        detector.scaler_ = restore_scaler(exported.arrays, "x_")
        detector.classes_ = np.array([0, 1])
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
        detector = ChildDetector(layout, c)
        probs[repeat] = cross_val_predict(detector, feats, labels, cv=splitter, method="predict_proba")[:, 1]
        tests += [test for _, test in splitter.split(feats, labels)]
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
    """The fitted detector, its cross-validated quality, and the chosen C's out-of-fold probabilities
    (mean over the repeated foldings, one per training image) for reports."""

    detector: ChildDetector
    cv: dict[str, float]
    grid: dict[str, dict[str, float]]
    oof: np.ndarray


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
    grid, oof = {}, {}
    for c in c_grid:
        probs, tests = out_of_fold(layout, feats, labels, c, folds, seed, repeats)
        grid[str(c)], oof[str(c)] = cv_summary(probs, labels, tests, target_recall), probs.mean(axis=0)
    best = max(grid, key=lambda c: (grid[c]["precision"], grid[c]["auc"]))
    detector = ChildDetector(layout, float(best), grid[best]["threshold"]).fit(feats, labels)
    return ChildReport(detector, grid[best], grid, oof[best])


def fit_child_detector(
    dataset: Dataset, feats: DatasetFeatures, layout: ImageLayout
) -> tuple[ChildDetector, dict[str, Any], pd.DataFrame]:
    """Fit on train images (labels from their captions), then measure on test images (their 5 captions).
    Also returns the out-of-fold view of the training images (:data:`CHILD_PREDICTIONS` columns)."""
    train_names = sorted(set(dataset.train["image"]) & set(feats.image_row))
    children = child_images(dataset)
    labels = np.array([name in children for name in train_names])
    report = train_child_detector(layout, feats.images(train_names), labels)
    queries = dataset.test_queries
    blocked_test = set(queries.loc[queries["query_text"].map(is_blocked), "image"])
    test_names = sorted(set(queries["image"]) & set(feats.image_row))
    test_probs = report.detector.probability(feats.images(test_names))
    test_labels = np.array([name in blocked_test for name in test_names])
    summary = {
        "cv": report.cv, "c": report.detector.c, "threshold": report.detector.threshold,
        "target_recall": TARGET_RECALL, "grid": report.grid,
        "test_images": detection_metrics(test_probs, test_labels, report.detector.threshold),
    }
    oof = pd.DataFrame({"image": train_names, "label": labels.astype(int), "probability": report.oof})
    return report.detector, summary, oof
