import numpy as np
import pytest

from picsearch.models.child import (
    ChildDetector, bootstrap_threshold, cv_summary, detection_metrics, near_duplicate_groups, out_of_fold,
    threshold_for_recall, train_child_detector,
)
from picsearch.models.linear import scale
from synthetic_models import LAYOUT, POOLED, image_vectors


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
    assert m["harmless_hidden"] == 1 / 3
    assert m["auc"] == pytest.approx(8 / 9)


def test_cv_summary_keeps_recall_in_every_repeat_and_reports_fold_spread() -> None:
    labels = np.array([1, 1, 0, 0], dtype=bool)
    probs = np.array([[0.9, 0.5, 0.6, 0.1], [0.8, 0.7, 0.2, 0.1]])  # repeat thresholds 0.5 and 0.7
    tests = [np.array([0, 2]), np.array([1, 3]), np.array([0, 3]), np.array([1, 2])]  # two folds per repeat
    s = cv_summary(probs, labels, tests, recall=1.0)
    assert s["threshold"] == 0.5
    # at 0.5: repeat 1 flags rows 0, 1, 2 (precision 2/3); repeat 2 flags rows 0, 1 (precision 1)
    assert s["recall"] == 1.0 and s["precision"] == pytest.approx(5 / 6)
    assert s["hidden_share"] == pytest.approx(5 / 8)
    # each fold alone: its single positive's probability
    assert (s["fold_threshold_min"], s["fold_threshold_max"]) == (0.5, 0.9)
    assert s["fold_threshold_std"] == pytest.approx(np.std([0.9, 0.5, 0.8, 0.7]))
    assert s["fold_recall_min"] == 1.0
    assert cv_summary(probs[1:], labels, tests[2:], recall=1.0)["threshold"] == 0.7


def test_bootstrap_threshold_keeps_recall_on_new_samples_where_the_plain_one_fails_half_the_time() -> None:
    rng = np.random.default_rng(3)
    scores = rng.normal(size=300)
    labels = np.ones(300, bool)
    plain, bound = threshold_for_recall(scores, labels, 0.99), bootstrap_threshold(scores, labels, 0.99)
    assert bound < plain

    def held(threshold: float) -> float:
        fresh = rng.normal(size=(400, 300))
        return float(((fresh >= threshold).mean(axis=1) >= 0.99).mean())

    assert held(bound) >= 0.8 and held(plain) < 0.7
    with pytest.raises(ValueError, match="no positive"):
        bootstrap_threshold(scores, np.zeros(300, bool), 0.99)


def test_near_duplicates_share_a_group() -> None:
    rng = np.random.default_rng(4)
    originals = rng.normal(size=(60, 256))
    copies = originals[:10] + 0.05 * rng.normal(size=(10, 256))
    groups = near_duplicate_groups(np.vstack([originals, copies]))
    np.testing.assert_array_equal(groups[60:], groups[:10])
    assert len(set(groups[:60])) == 60  # distinct photos are not merged


def test_out_of_fold_keeps_a_group_in_one_fold() -> None:
    rng = np.random.default_rng(4)
    feats = image_vectors(60, rng)
    labels = feats[:, 0] > 0
    groups = np.arange(60) // 3  # triples
    _, tests = out_of_fold(LAYOUT, feats, labels, c=0.1, folds=3, seed=0, repeats=2, groups=groups)
    for test in tests:
        assert all(np.isin(np.flatnonzero(groups == g), test).all() for g in set(groups[test]))


def test_neighbour_vote_flags_a_cluster_the_linear_part_cannot_separate() -> None:
    """Children in two opposite clusters, harmless photos in the two others: no straight line separates them."""
    rng = np.random.default_rng(5)
    centres = np.zeros((4, POOLED))
    centres[0, 0], centres[1, 0], centres[2, 1], centres[3, 1] = 3, -3, 3, -3
    which = rng.integers(0, 4, size=400)
    feats = image_vectors(400, rng)
    feats[:, :POOLED] = centres[which] + 0.5 * rng.normal(size=(400, POOLED))
    labels = which < 2
    detector = ChildDetector(LAYOUT, c=1.0).fit(feats, labels)
    probe = image_vectors(4, rng)
    probe[:, :POOLED] = centres
    vote = detector.neighbour_vote(scale(detector.scaler_, LAYOUT.pooled_of(probe)))
    np.testing.assert_allclose(vote, [1, 1, 0, 0], atol=0.05)
    prob = detector.probability(probe)
    assert min(prob[:2]) > max(prob[2:])


def test_out_of_fold_rows_are_scored_by_models_that_never_saw_them() -> None:
    rng = np.random.default_rng(1)
    feats = image_vectors(60, rng)
    labels = feats[:, 0] > 0
    probs, tests = out_of_fold(LAYOUT, feats, labels, c=0.1, folds=3, seed=0, repeats=2)
    assert probs.shape == (2, 60) and len(tests) == 6
    for repeat in range(2):
        covered = np.sort(np.concatenate(tests[3 * repeat : 3 * repeat + 3]))
        np.testing.assert_array_equal(covered, np.arange(60))  # every image held out exactly once per repeat
    first_fold = tests[0]
    rest = np.setdiff1d(np.arange(60), first_fold)
    alone = ChildDetector(LAYOUT, 0.1).fit(feats[rest], labels[rest]).probability(feats[first_fold])
    np.testing.assert_allclose(probs[0, first_fold], alone)


def test_detector_reaches_recall_and_round_trips() -> None:
    rng = np.random.default_rng(0)
    feats = image_vectors(300, rng)
    labels = (feats[:, 0] + 0.5 * rng.normal(size=300)) > 0.3
    report = train_child_detector(LAYOUT, feats, labels, target_recall=0.99, c_grid=(0.1, 1.0), folds=3, repeats=2)
    assert report.cv["recall"] >= 0.99 and report.cv["auc"] > 0.8
    assert report.cv["fold_threshold_min"] <= report.cv["fold_threshold_max"]
    detector = report.detector
    assert detection_metrics(detector.probability(feats), labels, detector.threshold)["recall"] >= 0.99
    again = ChildDetector.restore(detector.export())
    np.testing.assert_array_equal(again.probability(feats), detector.probability(feats))
    assert again.threshold == detector.threshold
    assert detector.is_child(feats).dtype == bool


def test_detector_separates_a_separable_set_and_keeps_few_false_alarms() -> None:
    rng = np.random.default_rng(2)
    feats = image_vectors(400, rng)
    feats = feats[np.abs(feats[:, 1] - 0.5) > 0.3]  # a margin around the boundary: linearly separable
    labels = feats[:, 1] > 0.5
    report = train_child_detector(LAYOUT, feats, labels, target_recall=0.99, c_grid=(1.0,), folds=4, repeats=1)
    assert report.cv["recall"] >= 0.99 and report.cv["precision"] > 0.9
