import numpy as np
import pytest

from picsearch.models.child import ChildDetector, detection_metrics, threshold_for_recall, train_child_detector
from synthetic_models import LAYOUT, image_vectors


def test_threshold_for_recall_hand_example() -> None:
    probs = np.array([0.9, 0.8, 0.3, 0.2, 0.7, 0.1])
    labels = np.array([1, 1, 1, 0, 0, 0])
    assert threshold_for_recall(probs, labels, 1.0) == 0.3  # lowest positive
    assert threshold_for_recall(probs, labels, 0.6) == 0.8  # 2 of 3 positives
    with pytest.raises(ValueError, match="no positive"):
        threshold_for_recall(probs, np.zeros(6), 0.99)


def test_detection_metrics_hand_example() -> None:
    probs = np.array([0.9, 0.8, 0.3, 0.2, 0.7, 0.1])
    labels = np.array([1, 1, 1, 0, 0, 0])
    m = detection_metrics(probs, labels, 0.3)
    assert m["recall"] == 1.0 and m["precision"] == 0.75 and m["hidden_share"] == 4 / 6
    assert m["auc"] == pytest.approx(8 / 9)


def test_detector_reaches_recall_and_round_trips() -> None:
    rng = np.random.default_rng(0)
    feats = image_vectors(300, rng)
    labels = (feats[:, 0] + 0.5 * rng.normal(size=300)) > 0.3
    report = train_child_detector(LAYOUT, feats, labels, target_recall=0.99, c_grid=(0.1, 1.0), folds=3)
    assert report.cv["recall"] >= 0.99 and report.cv["auc"] > 0.8
    detector = report.detector
    again = ChildDetector.restore(detector.export())
    np.testing.assert_array_equal(again.probability(feats), detector.probability(feats))
    assert again.threshold == detector.threshold
    assert detector.is_child(feats).dtype == bool
