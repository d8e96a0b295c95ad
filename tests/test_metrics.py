"""Retrieval metrics against a ranking worked out by hand."""

from __future__ import annotations

import math

import numpy as np
import pytest

from picsearch.metrics import mean_reciprocal_rank, median_rank, rank_of, recall_at, summarize

# Four queries over images a..f; the correct image sits at ranks 1, 3, 7 and nowhere.
RANKINGS = [
    ["a", "b", "c", "d", "e", "f"],
    ["b", "a", "c", "d", "e", "f"],
    ["f", "e", "d", "c", "b", "a", "g"],
    ["a", "b", "c"],
]
TARGETS = ["a", "c", "g", "z"]


def test_rank_of_is_one_based_and_inf_when_absent():
    ranks = [rank_of(ranking, target) for ranking, target in zip(RANKINGS, TARGETS)]
    assert ranks == [1.0, 3.0, 7.0, math.inf]
    assert rank_of(np.array([4, 9, 2]), 2) == 3.0


def test_summary_matches_hand_computation():
    ranks = [rank_of(ranking, target) for ranking, target in zip(RANKINGS, TARGETS)]
    summary = summarize(ranks)
    assert summary["n_queries"] == 4
    assert summary["recall@1"] == 0.25  # only the first query
    assert summary["recall@5"] == 0.5  # ranks 1 and 3
    assert summary["recall@10"] == 0.75  # ranks 1, 3 and 7
    assert summary["mrr"] == pytest.approx(round((1 + 1 / 3 + 1 / 7 + 0) / 4, 4))
    assert summary["median_rank"] == 5.0  # median of 1, 3, 7, inf


def test_median_rank_undefined_when_most_are_missing():
    assert median_rank(np.array([1.0, math.inf, math.inf])) is None
    assert median_rank(np.array([])) is None


def test_empty_input_gives_zeros():
    assert recall_at(np.array([]), 5) == 0.0
    assert mean_reciprocal_rank(np.array([])) == 0.0


def test_ranks_of_targets_are_one_based_and_ties_count_against() -> None:
    from picsearch.metrics import ranks_of_targets

    scores = np.array([[0.9, 0.5, 0.5], [0.1, 0.2, 0.3]])
    assert ranks_of_targets(scores, np.array([0, 1])).tolist() == [1, 2]
    assert ranks_of_targets(scores, np.array([1, 0])).tolist() == [3, 3]
    assert recall_at(ranks_of_targets(scores, np.array([0, 2])), 1) == 1.0


def test_retrieval_ranks_with_rerank_use_the_same_convention() -> None:
    from picsearch.models.retrieval_cv import retrieval_ranks

    images, texts = np.eye(3), np.array([[1.0, 0.2, 0.0], [0.0, 1.0, 0.5]])
    by_cosine = retrieval_ranks(images, texts, np.array([0, 2]))
    assert by_cosine.tolist() == [1, 2]

    def prefer_last(rows: np.ndarray, queries: np.ndarray) -> np.ndarray:
        return rows.astype(float)  # the highest row first

    assert retrieval_ranks(images, texts, np.array([0, 2]), prefer_last, candidates=3).tolist() == [3, 1]
