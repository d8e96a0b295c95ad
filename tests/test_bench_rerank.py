"""bench.rerank: the galleries measured, the ranks of every scorer on them, and the differences from today's rerank."""

import numpy as np
import pytest

from picsearch.bench.rerank import fold_ranks, galleries, per_query, report
from picsearch.models.rerank import Cells, score_only
from picsearch.models.retrieval_cv import BeatPrior, FoldGallery

ANY_PRIOR = BeatPrior(0.5, (1.0, 1.0), (20.0, 2.0))


def gallery(n_queries: int = 30, n_images: int = 120) -> tuple[FoldGallery, np.ndarray]:
    targets = np.arange(n_queries) % n_images
    distractors = np.ones((n_queries, n_images), dtype=bool)
    distractors[np.arange(n_queries), targets] = False
    images = [f"i{n}.jpg" for n in range(n_images)]
    joint = np.random.default_rng(0).normal(size=(n_queries, n_images))
    return FoldGallery(images, [f"q{n}" for n in range(n_queries)], targets, distractors), joint


def test_galleries_add_the_fold_size_predicted_from_thinned_pools() -> None:
    full, joint = gallery()
    cells = Cells(joint, joint, np.stack([joint]))
    measured = galleries(full, cells, ANY_PRIOR, 20, np.random.default_rng(2))
    assert list(measured) == ["100", "200", "1000", "120 from 20"]
    small, size, prior = measured["120 from 20"]
    assert size == 120 and (small.pool == 20).all() and prior != ANY_PRIOR


def test_fold_ranks_draw_within_the_pool_and_model_beyond_it_for_every_scorer() -> None:
    full, joint = gallery()
    cells = Cells(-joint, joint, np.stack([joint]))
    scorers = {5: {"rerank@5": score_only, "joint@5": lambda rows: rows[:, 1]}}
    rng = np.random.default_rng(3)
    drawn = fold_ranks(full, cells, scorers, 100, ANY_PRIOR, 4, rng)
    assert set(drawn) == {"joint", "rerank@5", "joint@5"} and drawn["joint"].shape == (30, 4)
    np.testing.assert_array_equal(drawn["joint@5"], drawn["joint"])  # reranking by the joint cosine changes nothing
    beyond = fold_ranks(full, cells, scorers, 1000, ANY_PRIOR, 4, rng)
    assert beyond["joint"].max() > 120 and (beyond["rerank@5"][beyond["joint"] > 5] > 5).all()


def test_report_gives_each_learned_rankers_difference_from_the_rerank_of_as_many_candidates() -> None:
    rerank = per_query(np.array([[1.0, 2.0], [7.0, 7.0], [3.0, 1.0]]))
    better = per_query(np.array([[1.0, 1.0], [4.0, 4.0], [1.0, 1.0]]))
    pooled = {"rerank@20": {"200": rerank}, "lambdarank@20": {"200": better}, "joint": {"200": rerank}}
    _, figures = report(pooled, np.array(["a", "b", "c"]), "t")
    row = figures["lambdarank@20"]["200"]
    assert row["recall@5"] == pytest.approx(1.0) and row["d_recall@5"] == pytest.approx(1 / 3)
    assert row["d_mrr"] == pytest.approx(np.mean([0.25, 0.25 - 1 / 7, 1 - 2 / 3])) and row["se_mrr"] > 0
    assert "d_recall@5" not in figures["joint"]["200"] and "d_recall@5" not in figures["rerank@20"]["200"]
