"""Measure search on labelled queries (``test_queries.csv`` format): Recall@K, MRR, median rank."""

from __future__ import annotations

from collections import Counter
from pathlib import PurePosixPath

import numpy as np
import pandas as pd

from picsearch.metrics import rank_of, summarize
from picsearch.policy import check
from picsearch.search.searcher import Ranking, Searcher, is_weak

RANKING = (
    "top candidates by joint-space cosine reranked by the relevance model's score, the rest by cosine "
    "(the search pipeline; every image is reranked when the gallery has no more than `candidates` images)"
)


def target_rows(searcher: Searcher, images: list[str]) -> list[int | None]:
    """Index row of each correct image, matched by relative path, else by unique file name."""
    by_path = {path: row for row, path in enumerate(searcher.index.paths)}
    names = [PurePosixPath(path).name for path in searcher.index.paths]
    counts = Counter(names)
    by_name = {name: row for row, name in enumerate(names) if counts[name] == 1}
    return [by_path.get(image, by_name.get(image)) for image in images]


def evaluate(searcher: Searcher, queries: pd.DataFrame) -> dict:
    """Metrics of the 1-based rank of each query's correct image.

    (a) Top level: the raw model, policy off, every indexed image rankable (``joint_only``: the
    same ranking before reranking, for reference). (b) ``with_policy``: blocked queries and
    hidden correct images (child-flagged, after review) count as misses; ``answerable``: the queries
    neither blocked nor with a hidden target; ``blocked`` and ``hidden_targets`` count the other two groups;
    ``weak``: :func:`weak_answers`.
    """
    texts = queries["query_text"].tolist()
    targets = target_rows(searcher, queries["image"].tolist())
    text_feats = searcher.text_encoder.encode(texts)
    index = searcher.index
    mapped = searcher.bundle.mapped_queries(texts)
    by_joint, raw = searcher._rank_unfiltered(text_feats, mapped)  # the raw model: policy off, flagged images included
    shown = searcher._rank(text_feats, len(searcher), searcher.candidates, mapped)
    blocked = np.array([check(text).blocked for text in texts], dtype=bool)
    hidden_now = searcher.moderation.hidden()
    hidden = np.array([t is not None and bool(hidden_now[t]) for t in targets]) & ~blocked

    raw_ranks = [rank_of(r.rows, t) for r, t in zip(raw, targets)]
    product_ranks = [
        float("inf") if blocked[q] or hidden[q] else rank_of(shown[q].rows, targets[q]) for q in range(len(texts))
    ]
    answerable = ~blocked & ~hidden
    return {
        "ranking": RANKING,
        "candidates": searcher.candidates,
        "gallery": len(index),
        **summarize(raw_ranks),
        "unindexed_targets": sum(t is None for t in targets),
        "blocked": int(blocked.sum()),
        "hidden_targets": int(hidden.sum()),
        "joint_only": summarize([rank_of(rows, t) for rows, t in zip(by_joint, targets)]),
        "with_policy": summarize(product_ranks),
        "answerable": summarize(np.asarray(product_ranks)[answerable]),
        "weak": weak_answers(shown, product_ranks, answerable, hidden),
    }


def weak_answers(shown: list[Ranking], ranks: list[float], answerable: np.ndarray, hidden: np.ndarray) -> dict:
    """How often an answer is weak (:func:`~picsearch.search.searcher.is_weak` of its visible images' scores, as
    :attr:`SearchResult.weak` says): among the ``answerable`` queries, whose correct image can be shown, and
    among those whose correct image is ``hidden``, where no shown image is the one the caption was written for;
    and Recall@1 (``ranks``: 1-based rank of each query's correct image) of the answerable weak and others."""
    weak = np.array([is_weak(ranking.scores) for ranking in shown], dtype=bool)
    first = np.asarray(ranks) == 1

    def share(values: np.ndarray, mask: np.ndarray) -> float | None:
        return round(float(values[mask].mean()), 4) if mask.any() else None

    return {
        "share": share(weak, answerable),
        "share_target_hidden": share(weak, hidden),
        "recall@1_weak": share(first, answerable & weak),
        "recall@1_others": share(first, answerable & ~weak),
    }
