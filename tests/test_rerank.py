import numpy as np
import pytest

from picsearch.models.matching import CaptionTransferMatcher, MatcherMemo, RidgeMatcher
from picsearch.models.matching_head import MatchingHead
from picsearch.models.rerank import (
    Cells, RankLists, clustered_se, drawn_beats, drawn_lists, feature_names, fit_lambdarank, fit_pairwise, fold_lists,
    lambdarank_scorer, list_features, reranked_ranks, score_only, tail_counts, tail_ranks, thinned, training_lists,
)
from picsearch.models.retrieval_cv import BeatPrior, FoldGallery, beat_counts, resampled_ranks
from synthetic_models import LAYOUT, synthetic_training_set

DATA = synthetic_training_set(n_images=60)
WEIGHTS = {"spy": 1.0, "transfer": 1.0}


class SpyMatcher(RidgeMatcher):
    """A ridge map that remembers the images it was fitted on."""

    def fit(self, image_feats: np.ndarray, text_feats: np.ndarray) -> "SpyMatcher":
        self.seen_ = {row.tobytes() for row in image_feats}
        return super().fit(image_feats, text_feats)


def fitted_head() -> MatchingHead:
    factories = {"spy": lambda: SpyMatcher(LAYOUT, 1.0), "transfer": lambda: CaptionTransferMatcher(LAYOUT, k=5)}
    return MatchingHead(factories, inner_folds=3, n_estimators=10, memo=MatcherMemo()).fit(DATA)


def test_no_list_comes_from_a_joint_space_fitted_on_its_query_image_and_labels_line_up() -> None:
    head = fitted_head()
    positives = DATA.positives.groupby("query_id")["image"].agg(set)
    for held_out, matchers, references in head.inner_matchers(DATA):
        lists = fold_lists(head, DATA, held_out, (matchers, references), WEIGHTS, candidates=5)
        seen = {name for name in DATA.image_row if DATA.images([name])[0].tobytes() in matchers["spy"].seen_}
        assert seen and not seen & held_out  # the matchers behind these lists never saw a held-out image
        assert lists.query_ids and all(positives[q] & held_out and not positives[q] & seen for q in lists.query_ids)
        assert set(lists.images.ravel()) <= held_out  # candidates come from the held-out images only
        expected = [[name in positives[q] for name in row] for q, row in zip(lists.query_ids, lists.images)]
        assert lists.labels.tolist() == np.array(expected, dtype=int).tolist()
        assert lists.labels.any(axis=1).all()
        np.testing.assert_allclose(lists.features[..., 0], head.predict_cells(
            DATA.images(held_out_sorted := sorted(held_out)), DATA.texts(lists.query_ids),
            np.searchsorted(held_out_sorted, lists.images), fitted=(matchers, references)), rtol=1e-6)


def test_training_lists_hold_each_caption_once_across_the_inner_folds() -> None:
    lists = training_lists(fitted_head(), DATA, WEIGHTS, candidates=8)
    assert len(lists.query_ids) == len(set(lists.query_ids)) and set(lists.query_ids) <= set(DATA.positives["query_id"])
    assert lists.features.shape == (len(lists.query_ids), 8, len(feature_names(list(WEIGHTS))))


def test_list_features_rank_and_gaps_are_within_the_valid_entries() -> None:
    score, joint = np.array([[0.2, 0.9, 0.5]]), np.array([[0.1, 0.3, 0.8]])
    valid = np.array([[True, True, False]])
    features = list_features(score, joint, np.stack([joint]), valid)
    np.testing.assert_allclose(features[0, :, -3], [1, 0, 2])  # the invalid entry is ranked after the valid ones
    np.testing.assert_allclose(features[0, :2, -2], [-0.7, 0.0], atol=1e-6)
    np.testing.assert_allclose(features[0, :2, -1], [-0.2, 0.0], atol=1e-6)


def gallery_of(n_queries: int, n_images: int, seed: int) -> tuple[FoldGallery, Cells]:
    rng = np.random.default_rng(seed)
    targets = np.arange(n_queries) % n_images
    distractors = np.ones((n_queries, n_images), dtype=bool)
    distractors[np.arange(n_queries), targets] = False
    distractors[0, (targets[0] + 1) % n_images] = False  # a second right answer: never drawn
    gallery = FoldGallery([f"i{n}.jpg" for n in range(n_images)], [f"q{n}" for n in range(n_queries)], targets,
                          distractors)
    joint = rng.normal(size=(n_queries, n_images))
    return gallery, Cells(rng.normal(size=joint.shape), joint, np.stack([joint, rng.normal(size=joint.shape)]))


def test_drawn_lists_reranked_by_the_score_are_todays_reranked_ranks() -> None:
    gallery, cells = gallery_of(40, 30, 1)
    expected = resampled_ranks(cells.joint, gallery, 20, np.random.default_rng(2), draws=1, rerank=cells.score,
                               candidates=6)[:, 0]
    joint_ranks, lists = drawn_lists(gallery, cells.joint, 20, 6, np.random.default_rng(2))
    assert (lists[:, 0] == gallery.targets).all()
    assert np.take_along_axis(gallery.distractors, lists[:, 1:], axis=1).all()
    np.testing.assert_array_equal(reranked_ranks(joint_ranks, lists, cells, score_only), expected)


def population(n_queries: int, n_images: int, seed: int) -> tuple[FoldGallery, Cells]:
    """Targets that stand out by joint and score by a per-query margin; the score follows the joint loosely."""
    gallery, cells = gallery_of(n_queries, n_images, seed)
    rng = np.random.default_rng(seed + 1)
    joint, score = cells.joint.copy(), 0.7 * cells.joint + 0.4 * cells.score
    rows = np.arange(n_queries)
    joint[rows, gallery.targets] += rng.uniform(1.0, 3.5, n_queries)
    score[rows, gallery.targets] += rng.uniform(0.0, 3.0, n_queries)
    return gallery, Cells(score, joint, np.stack([joint]))


def test_tail_ranks_from_a_small_pool_predict_reranked_ranks_in_a_larger_gallery() -> None:
    gallery, cells = population(600, 500, 3)
    rng = np.random.default_rng(4)
    direct = np.column_stack([reranked_ranks(*drawn_lists(gallery, cells.joint, 500, 10, rng), cells, score_only)
                              for _ in range(3)])
    small = thinned(gallery, 99, rng)
    assert (small.pool == 99).all() and not (small.distractors & ~gallery.distractors).any()
    prior = BeatPrior.fit(beat_counts(cells.joint, small), small.pool)
    counts = tail_counts(small, cells, score_only, 500, 10, rng)
    assert (counts.beater_pool <= 9).all() and ((counts.miss_pool >= 1) | (counts.beater_pool == 9)).all()
    assert (counts.beater_wins <= counts.beater_pool).all() and (counts.miss_wins <= counts.miss_pool).all()
    beats = np.column_stack([drawn_beats(small, cells.joint, 500, prior, rng) for _ in range(20)])
    predicted = np.column_stack([tail_ranks(counts, beats[:, d], 10, rng) for d in range(20)])
    assert ((predicted == 1 + beats) | (beats < 10)).all()  # outside the list, the joint rank stays
    for k in (1, 5):
        assert (predicted <= k).mean() == pytest.approx((direct <= k).mean(), abs=0.03)
    resampled = np.column_stack([reranked_ranks(*drawn_lists(small, cells.joint, 100, 10, rng), cells, score_only)
                                 for _ in range(3)])
    assert abs((resampled <= 1).mean() - (direct <= 1).mean()) > 0.05  # the small pool's own R@1 is not it


def separable_lists(seed: int) -> RankLists:
    rng = np.random.default_rng(seed)
    features = rng.normal(size=(300, 10, 4)).astype(np.float32)
    features[..., 2] = np.minimum(features[..., 2], 1.0)
    features[:, 0, 2] = 1.0 + rng.random(300)  # the one positive of each list: the highest third feature
    labels = np.zeros((300, 10), dtype=np.int32)
    labels[:, 0] = 1
    images = np.full((300, 10), "x")
    return RankLists([f"q{n}" for n in range(300)], images, features, labels, np.ones((300, 10), dtype=bool))


@pytest.mark.parametrize("fit", [lambda lists: lambdarank_scorer(fit_lambdarank(lists)), fit_pairwise])
def test_rankers_learn_which_feature_orders_the_positives(fit) -> None:
    train, test = separable_lists(5), separable_lists(6)
    scores = fit(train)(test.features.reshape(-1, 4)).reshape(test.labels.shape)
    assert (scores[:, 0] >= scores[:, 1:].max(axis=1)).mean() > 0.95


def test_clustered_se_is_the_plain_se_for_independent_rows_and_grows_with_clusters() -> None:
    values = np.random.default_rng(7).normal(size=400)
    plain = values.std() / np.sqrt(len(values))
    assert clustered_se(values, np.arange(400)) == pytest.approx(plain)
    assert clustered_se(np.repeat(values[:100], 4), np.repeat(np.arange(100), 4)) > 1.5 * plain
