"""bench.rerank: thinned pools, the gallery makers and the table's differences against today's rerank."""

import numpy as np
import pytest

from picsearch.bench.rerank import gallery_makers, per_query, report, thinned
from picsearch.models.retrieval_cv import BeatPrior, FoldGallery


def gallery(n_queries: int = 30, n_images: int = 120) -> tuple[FoldGallery, np.ndarray]:
    targets = np.arange(n_queries) % n_images
    distractors = np.ones((n_queries, n_images), dtype=bool)
    distractors[np.arange(n_queries), targets] = False
    images = [f"i{n}.jpg" for n in range(n_images)]
    joint = np.random.default_rng(0).normal(size=(n_queries, n_images))
    return FoldGallery(images, [f"q{n}" for n in range(n_queries)], targets, distractors), joint


def test_thinned_keeps_that_many_of_each_querys_own_distractors() -> None:
    full, _ = gallery()
    small = thinned(full, 20, np.random.default_rng(1))
    assert (small.pool == 20).all() and not (small.distractors & ~full.distractors).any()


def test_gallery_makers_draw_up_to_the_fold_and_bootstrap_beyond_and_for_the_check() -> None:
    full, joint = gallery()
    makers = gallery_makers(full, joint, BeatPrior(0.5, (1.0, 1.0), (20.0, 2.0)), 20, np.random.default_rng(2))
    assert list(makers) == ["100", "200", "1000", "120 from 20"]
    for label, make in makers.items():
        ranks, lists = make(5)
        size = int(label.split()[0])
        assert lists.shape == (30, 5) and (lists[:, 0] == full.targets).all() and ranks.max() <= size
    exact, _ = makers["100"](5)
    assert exact.max() > 20  # drawn galleries of 100 rank beyond the check pool's 21


def test_report_gives_each_learned_rankers_difference_from_the_rerank_of_as_many_candidates() -> None:
    rerank = per_query(np.array([[1.0, 2.0], [7.0, 7.0], [3.0, 1.0]]))
    better = per_query(np.array([[1.0, 1.0], [4.0, 4.0], [1.0, 1.0]]))
    pooled = {"rerank@20": {"200": rerank}, "lambdarank@20": {"200": better}, "joint": {"200": rerank}}
    _, figures = report(pooled, np.array(["a", "b", "c"]), "t")
    row = figures["lambdarank@20"]["200"]
    assert row["recall@5"] == pytest.approx(1.0) and row["d_recall@5"] == pytest.approx(1 / 3)
    assert row["d_mrr"] == pytest.approx(np.mean([0.25, 0.25 - 1 / 7, 1 - 2 / 3])) and row["se_mrr"] > 0
    assert "d_recall@5" not in figures["joint"]["200"] and "d_recall@5" not in figures["rerank@20"]["200"]
