from itertools import combinations

import numpy as np
import pandas as pd
import pytest
from scipy import stats

from picsearch.metrics import ranks_of_targets, summarize
from picsearch.models.retrieval_cv import (
    GALLERY_SIZES, BeatPrior, FoldGallery, beat_counts, betabinom_logpmf, draw_distractors, expected_summary, fold_galleries, fold_gallery,
    rank_distribution, resampled_ranks, retrieval_cv, retrieval_ranks,
)
from picsearch.models.splits import grouped_folds
from picsearch.models.vectors import l2_normalize
from synthetic_models import synthetic_training_set


def full_gallery(n_queries: int, n_images: int, rng: np.random.Generator) -> tuple[FoldGallery, np.ndarray]:
    """A gallery where query q's target is image q % n_images and every other image is a distractor."""
    targets = np.arange(n_queries) % n_images
    distractors = np.ones((n_queries, n_images), dtype=bool)
    distractors[np.arange(n_queries), targets] = False
    gallery = FoldGallery([f"i{n}.jpg" for n in range(n_images)], [f"q{n}" for n in range(n_queries)], targets,
                          distractors)
    return gallery, rng.normal(size=(n_queries, n_images))


def test_fold_gallery_drops_second_right_answers_from_the_distractors() -> None:
    queries = pd.DataFrame({
        "query_id": ["a.jpg#0", "b.jpg#0", "b.jpg#0", "c.jpg#1", "x.jpg#0"],
        "image": ["a.jpg", "b.jpg", "c.jpg", "c.jpg", "x.jpg"],  # b.jpg#0 also describes c; x is not held out
    })
    gallery = fold_gallery(queries, {"a.jpg", "b.jpg", "c.jpg", "d.jpg"})
    assert gallery.images == ["a.jpg", "b.jpg", "c.jpg", "d.jpg"]
    assert gallery.query_ids == ["a.jpg#0", "b.jpg#0", "b.jpg#0", "c.jpg#1"]
    assert [gallery.images[t] for t in gallery.targets] == ["a.jpg", "b.jpg", "c.jpg", "c.jpg"]
    assert gallery.distractors.tolist() == [
        [False, True, True, True], [True, False, False, True], [True, False, False, True],
        [True, True, False, True],
    ]


def test_no_query_image_is_in_its_models_training_fold_and_distractors_are_held_out() -> None:
    data = synthetic_training_set(n_images=60)
    queries = data.positives[["query_id", "image"]]
    folds = grouped_folds(data.evaluation["image"], 5, 0)
    seen_queries = []
    for train_images, gallery in fold_galleries(data, queries, folds):
        assert not train_images & set(gallery.images)
        assert not train_images & {gallery.images[t] for t in gallery.targets}
        drawn, valid = draw_distractors(gallery, 30, np.random.default_rng(0))  # more than the pool holds
        assert (np.take_along_axis(gallery.distractors, drawn, axis=1) == valid).all()
        assert (valid.sum(axis=1) == gallery.pool).all()  # each distractor drawn once
        seen_queries += gallery.query_ids
    assert sorted(seen_queries) == sorted(queries["query_id"])  # every query searched once, in its own fold


class MemorizingMatcher:
    """Embeds an image it was fitted on as its caption, any other as nothing: leaks show as perfect recall."""

    kind = "memorizing"

    def fit(self, image_feats: np.ndarray, text_feats: np.ndarray) -> "MemorizingMatcher":
        self.seen_ = {row.tobytes(): text for row, text in zip(image_feats, l2_normalize(text_feats))}
        return self

    def embed_image(self, image_feats: np.ndarray) -> np.ndarray:
        width = len(next(iter(self.seen_.values())))
        return np.stack([self.seen_.get(row.tobytes(), np.zeros(width, np.float32)) for row in image_feats])

    def embed_text(self, text_feats: np.ndarray) -> np.ndarray:
        return l2_normalize(text_feats)


class ConstantScorer:
    def predict(self, image_feats: np.ndarray, text_feats: np.ndarray) -> np.ndarray:
        return np.zeros(len(image_feats))


def test_a_memorizing_matcher_finds_nothing_because_no_model_saw_its_queries_images() -> None:
    data = synthetic_training_set(n_images=60)
    queries = data.positives[["query_id", "image"]]
    memo = MemorizingMatcher().fit(*data.positive_feats())
    own = l2_normalize(data.texts(queries["query_id"])) @ memo.embed_image(data.images(queries["image"])).T
    assert (ranks_of_targets(own, np.arange(len(queries))) == 1).all()  # on images it saw, it is perfect
    folds = grouped_folds(data.evaluation["image"], 5, 0)
    summary, _ = retrieval_cv(data, queries, folds, [ConstantScorer()] * 5, {"memo": MemorizingMatcher},
                              lambda _: None)
    for option in summary.values():
        assert set(option["by_size"]) == {str(size) for size in GALLERY_SIZES}
        assert all(at_size["recall@10"] < 0.05 for at_size in option["by_size"].values()), option["by_size"]


ANY_PRIOR = BeatPrior(0.5, (1.0, 1.0), (1.0, 1.0))  # unused where the pool holds the gallery


def test_rank_distribution_at_the_full_pool_is_the_direct_rank() -> None:
    gallery, scores = full_gallery(40, 12, np.random.default_rng(1))
    distribution = rank_distribution(beat_counts(scores, gallery), gallery.pool, 12, ANY_PRIOR)
    direct = ranks_of_targets(scores, gallery.targets)
    np.testing.assert_allclose(distribution[np.arange(40), direct.astype(int) - 1], 1.0)
    expected, exact = expected_summary(distribution), summarize(direct, digits=None)
    assert all(expected[key] == pytest.approx(exact[key]) for key in ("recall@1", "recall@5", "recall@10", "mrr"))


def test_rank_distribution_without_replacement_is_the_mean_over_every_smaller_gallery() -> None:
    gallery, scores = full_gallery(5, 7, np.random.default_rng(2))
    size = 4
    distribution = rank_distribution(beat_counts(scores, gallery), gallery.pool, size, ANY_PRIOR)
    for q, target in enumerate(gallery.targets):
        others = [i for i in range(7) if i != target]
        ranks = [1 + sum(scores[q, i] >= scores[q, target] for i in drawn) for drawn in combinations(others, size - 1)]
        np.testing.assert_allclose(distribution[q], np.bincount(ranks, minlength=size + 1)[1:] / len(ranks))


def test_betabinom_logpmf_is_scipys() -> None:
    k, n = np.arange(200)[None, :], np.array([[199], [999]])
    a, b = np.array([[0.3], [40.5]]), np.array([[60.0], [2.0]])
    np.testing.assert_allclose(betabinom_logpmf(k, n, a, b), stats.betabinom.logpmf(k, n, a, b), rtol=1e-10)


def test_beyond_the_pool_the_rank_follows_the_true_beat_probabilities() -> None:
    rng = np.random.default_rng(3)
    easy = rng.random(6000) < 0.4  # a mixture: many queries almost never beaten, the rest often
    p = np.where(easy, rng.beta(0.3, 60.0, 6000), rng.beta(1.0, 4.0, 6000))
    beats, pool = rng.binomial(199, p), np.full(6000, 199)
    predicted = expected_summary(rank_distribution(beats, pool, 1000, BeatPrior.fit(beats, pool)))
    ranks = 1 + rng.binomial(999, p)  # galleries of 1,000 drawn from the true probabilities
    truth = summarize(ranks, digits=None)
    for key in ("recall@1", "recall@5", "recall@10", "mrr"):
        assert predicted[key] == pytest.approx(truth[key], abs=0.02)
    plug_in = np.mean((1 - beats / pool) ** 999)  # redrawing the same 199: never beaten stays never beaten
    assert abs(plug_in - truth["recall@1"]) > 3 * abs(predicted["recall@1"] - truth["recall@1"])


def test_resampled_ranks_agree_with_the_exact_distribution() -> None:
    gallery, scores = full_gallery(300, 50, np.random.default_rng(4))
    exact = expected_summary(rank_distribution(beat_counts(scores, gallery), gallery.pool, 20, ANY_PRIOR))
    drawn = summarize(resampled_ranks(scores, gallery, 20, np.random.default_rng(5), draws=50).ravel(), digits=None)
    for key in ("recall@1", "recall@5", "recall@10", "mrr"):
        assert drawn[key] == pytest.approx(exact[key], abs=0.01)


def test_resampled_reranking_on_the_full_pool_is_search_with_rerank() -> None:
    gallery, joint = full_gallery(30, 25, np.random.default_rng(6))
    rerank = np.random.default_rng(7).normal(size=joint.shape)
    drawn = resampled_ranks(joint, gallery, 25, np.random.default_rng(8), draws=2, rerank=rerank, candidates=5)
    searched = retrieval_ranks(
        np.eye(25), joint, gallery.targets, rerank=lambda rows, queries: rerank[queries[0], rows], candidates=5,
    )
    assert (drawn == searched[:, None]).all()
    assert (searched != ranks_of_targets(joint, gallery.targets)).any()  # the rerank changed something
