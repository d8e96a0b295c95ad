"""The retrieval estimate: search as the product does, on galleries of held-out training images, to choose the
joint space and to measure what reranking by the relevance score adds.

Per fold, the gallery is every image the fold holds out (200 of 1,000), searched with the captions that describe
them by the models fitted on the other folds. A query's *distractors* are the gallery's other images, less any
it is known to describe too (crowd-confirmed, or the image it was written for). Galleries of other sizes are
resampled from those distractors, never from training images (the fold's model has seen them) nor from other
folds (their scores come from another model): ``beats`` of a query's ``pool`` distractors score at least its
target, so in a gallery of N images (N - 1 distractors) its rank is 1 + Hypergeometric(pool, beats, N - 1) when
the pool allows drawing without replacement (the exact mean over every such gallery), else
1 + Binomial(N - 1, beats / pool) (distractors drawn with replacement). Recall@K, MRR and median rank are
expectations over that distribution. Reranking depends on which distractors are drawn together, so its ranks at
each size are Monte Carlo draws of the same galleries.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable, Iterator

import numpy as np
import pandas as pd
from scipy import stats

from picsearch.data.tables import Dataset, caption_image
from picsearch.metrics import RECALL_KS, rank_of, ranks_of_targets, summarize
from picsearch.models.matching import JointSpace, Matcher, MatcherFactory, fit_matchers
from picsearch.models.matching_head import MatchingHead
from picsearch.models.relevance import RelevanceModel
from picsearch.models.selection import choose_joint, joint_options
from picsearch.models.splits import Split, split_images
from picsearch.models.trainset import TrainingSet
from picsearch.policy.filter import CROWD_CONFIRMED

RERANK_CANDIDATES = 20
GALLERY_SIZES = (100, 200, 1000)
"""Gallery sizes the estimate reports: test_images/, one fold's held-out images, and about the unseen set."""
SELECTION_SIZE = 1000
"""The size whose Recall@5 chooses the joint space: the size of the galleries users index."""
RERANK_DRAWS = 10
"""Monte Carlo galleries per query and size for the reranked estimate."""


def retrieval_ranks(
    joint_image: np.ndarray,
    joint_text: np.ndarray,
    targets: np.ndarray,
    rerank: Callable[[np.ndarray, np.ndarray], np.ndarray] | None = None,
    candidates: int = RERANK_CANDIDATES,
) -> np.ndarray:
    """1-based rank of each query's target image: by joint cosine, then the top ``candidates`` reranked by score.

    ``rerank(image_rows, query_rows)`` scores candidate images for one query; reranked images precede the rest.
    """
    sims = joint_text @ joint_image.T
    if rerank is None:
        return ranks_of_targets(sims, targets)
    order = np.argsort(-sims, axis=1, kind="stable")
    ranks = np.empty(len(targets), dtype=np.float64)
    for query, target in enumerate(targets):
        top = order[query, :candidates]
        reranked = top[np.argsort(-rerank(top, np.full(len(top), query)), kind="stable")]
        ranks[query] = rank_of(np.concatenate([reranked, order[query, candidates:]]), target)
    return ranks


@dataclass(frozen=True)
class FoldGallery:
    """One fold's gallery: its held-out images (sorted), the queries that describe one of them, each query's
    target row, and ``distractors[q, i]``: image ``i`` may be drawn as a wrong answer for query ``q``."""

    images: list[str]
    query_ids: list[str]
    targets: np.ndarray
    distractors: np.ndarray

    @property
    def pool(self) -> np.ndarray:
        """Distractors available to each query."""
        return self.distractors.sum(axis=1)


def fold_gallery(queries: pd.DataFrame, held_out: set[str]) -> FoldGallery:
    """The gallery of ``held_out`` images and the queries (``query_id, image``) whose image is one of them.

    An image the query is known to describe besides its target (another crowd-confirmed image, the image the
    caption was written for) is no distractor: it is a second right answer. A query left with no distractor
    is dropped.
    """
    images = sorted(held_out)
    chosen = queries[queries["image"].isin(held_out)].reset_index(drop=True)
    known = queries.groupby("query_id")["image"].agg(set)
    relevant = [known[q] | {caption_image(q)} for q in chosen["query_id"]]
    distractors = np.array([[image not in right for image in images] for right in relevant], dtype=bool)
    distractors = distractors.reshape(len(chosen), len(images))
    kept = distractors.any(axis=1)
    targets = np.searchsorted(images, chosen["image"].to_numpy()[kept])
    return FoldGallery(images, chosen["query_id"][kept].tolist(), targets, distractors[kept])


def fold_galleries(data: TrainingSet, queries: pd.DataFrame, folds: list[Split]) -> Iterator[tuple[set[str], FoldGallery]]:
    """(training images, gallery of the held-out images) per fold."""
    for split in folds:
        train_images, test_images = split_images(data.evaluation["image"], split)
        yield train_images, fold_gallery(queries, test_images)


def beat_counts(scores: np.ndarray, gallery: FoldGallery) -> np.ndarray:
    """How many of each query's distractors score at least its target (ties count against, as in ranks)."""
    own = scores[np.arange(len(gallery.targets)), gallery.targets]
    return ((scores >= own[:, None]) & gallery.distractors).sum(axis=1)


def rank_distribution(beats: np.ndarray, pool: np.ndarray, size: int) -> np.ndarray:
    """``P[q, r]``: probability that query ``q``'s target ranks ``r + 1`` in a gallery of ``size`` images (the
    target and ``size - 1`` distractors resampled from its pool: without replacement when the pool allows)."""
    draws = size - 1
    k = np.arange(size)[None, :]
    beats, pool = np.asarray(beats)[:, None], np.asarray(pool)[:, None]
    exact = stats.hypergeom.pmf(k, np.maximum(pool, draws), beats, draws)
    resampled = stats.binom.pmf(k, draws, beats / np.maximum(pool, 1))
    return np.where(pool >= draws, exact, resampled)


def expected_summary(distribution: np.ndarray, ks: tuple[int, ...] = RECALL_KS) -> dict[str, float]:
    """:func:`~picsearch.metrics.summarize`'s fields as expectations over per-query rank distributions."""
    mixed = distribution.mean(axis=0)
    cumulative = np.cumsum(mixed)
    summary: dict = {"n_queries": int(len(distribution))}
    summary.update({f"recall@{k}": float(cumulative[min(k, len(mixed)) - 1]) for k in ks})
    summary["mrr"] = float(mixed @ (1.0 / np.arange(1, len(mixed) + 1)))
    summary["median_rank"] = float(np.searchsorted(cumulative, 0.5) + 1)
    return summary


def resampled_ranks(
    joint: np.ndarray, gallery: FoldGallery, size: int, rng: np.random.Generator, draws: int = RERANK_DRAWS,
    rerank: np.ndarray | None = None, candidates: int = RERANK_CANDIDATES,
) -> np.ndarray:
    """Ranks of each query's target in ``draws`` random galleries of ``size`` images, ``(queries, draws)``.

    Distractors are drawn from each query's pool as in :func:`rank_distribution`; ``joint[q, i]`` orders the
    gallery, and ``rerank[q, i]`` (when given) reorders its top ``candidates``, as search does.
    """
    rows = np.arange(len(gallery.targets))[:, None]
    own_joint = joint[rows[:, 0], gallery.targets][:, None]
    ranks = np.empty((len(rows), draws))
    for draw in range(draws):
        drawn = draw_distractors(gallery, size - 1, rng)
        beaten = joint[rows, drawn] >= own_joint
        ranks[:, draw] = 1 + beaten.sum(axis=1)
        if rerank is not None:
            ranks[:, draw] = _reranked(ranks[:, draw], joint[rows, drawn], rerank[rows, drawn], rerank[
                rows[:, 0], gallery.targets], candidates)
    return ranks


def _reranked(ranks: np.ndarray, joint: np.ndarray, rerank: np.ndarray, own: np.ndarray, candidates: int
              ) -> np.ndarray:
    """A target ranked within ``candidates`` by joint is outranked only by the candidates that outscore it."""
    kept = min(candidates - 1, joint.shape[1])
    top = np.argpartition(-joint, kept - 1, axis=1)[:, :kept] if kept else np.zeros((len(joint), 0), dtype=int)
    beaten = (np.take_along_axis(rerank, top, axis=1) >= own[:, None]).sum(axis=1)
    return np.where(ranks <= candidates, 1 + beaten, ranks)


def draw_distractors(gallery: FoldGallery, count: int, rng: np.random.Generator) -> np.ndarray:
    """``(queries, count)`` gallery columns: distractors of each query, without replacement where its pool
    allows, else with replacement."""
    pool = gallery.pool
    keys = np.where(gallery.distractors, rng.random(gallery.distractors.shape), np.inf)
    by_key = np.argsort(keys, axis=1)  # a random order of each query's distractors, the rest behind
    positions = np.tile(np.arange(count), (len(pool), 1))
    with_replacement = pool < count
    positions[with_replacement] = (rng.random((with_replacement.sum(), count)) * pool[with_replacement, None]).astype(int)
    return np.take_along_axis(by_key, positions, axis=1)


def matchers_of(model: RelevanceModel, factories: dict[str, MatcherFactory], data: TrainingSet) -> dict[str, Matcher]:
    """The model's own fitted matchers, or matchers fitted on ``data``'s positives for models without any."""
    return model.matchers_ if isinstance(model, MatchingHead) else fit_matchers(factories, *data.positive_feats())


def score_grid(model: RelevanceModel, image_feats: np.ndarray, text_feats: np.ndarray) -> np.ndarray:
    """The model's score of every text against every image, ``(texts, images)``."""
    if isinstance(model, MatchingHead):
        return model.predict_grid(image_feats, text_feats)
    return np.stack([model.predict(image_feats, np.repeat(text[None], len(image_feats), 0)) for text in text_feats])


def retrieval_cv(
    data: TrainingSet, queries: pd.DataFrame, folds: list[Split], fold_models: list[RelevanceModel],
    factories: dict[str, MatcherFactory], progress: Callable[[str], None], seed: int = 0,
) -> tuple[dict[str, dict], str]:
    """The estimate of the module docstring for every joint-space option, and ``<best>+rerank`` (its top
    candidates reranked by the model's score); ``fold_models`` are the selected model fitted on each fold
    (their matchers are reused when they have some).

    Each option's summary holds its numbers at :data:`SELECTION_SIZE`, ``dims`` and ``by_size`` (the numbers
    at every size of :data:`GALLERY_SIZES`). Returns the summaries and the option :func:`choose_joint` picks.
    """
    beats: dict[str, list[np.ndarray]] = {}
    dims: dict[str, int] = {}
    prepared = []
    for (train_images, gallery), model in zip(fold_galleries(data, queries, folds), fold_models):
        progress("retrieval estimate")
        matchers = matchers_of(model, factories, data.restrict(train_images))
        image_feats, text_feats = data.images(gallery.images), data.texts(gallery.query_ids)
        for option, weights in joint_options(list(matchers)).items():
            scores, dims[option] = _joint_scores(JointSpace(matchers, weights), image_feats, text_feats)
            beats.setdefault(option, []).append(beat_counts(scores, gallery))
        prepared.append((model, matchers, gallery, image_feats, text_feats))
    pool = np.concatenate([gallery.pool for *_, gallery, _, _ in prepared])
    summary = {
        option: _by_size({size: expected_summary(rank_distribution(np.concatenate(b), pool, size))
                          for size in GALLERY_SIZES}, dims[option])
        for option, b in beats.items()
    }
    best = choose_joint(summary, n_queries=len(pool))
    rng = np.random.default_rng(seed)
    reranked: dict[int, list[np.ndarray]] = {size: [] for size in GALLERY_SIZES}
    for model, matchers, gallery, image_feats, text_feats in prepared:
        joint, _ = _joint_scores(JointSpace(matchers, joint_options(list(matchers))[best]), image_feats, text_feats)
        rerank = score_grid(model, image_feats, text_feats)
        for size in GALLERY_SIZES:
            reranked[size].append(resampled_ranks(joint, gallery, size, rng, rerank=rerank).ravel())
    summary[f"{best}+rerank"] = _by_size(
        {size: summarize(np.concatenate(r), digits=None) for size, r in reranked.items()}, dims[best]
    )
    return summary, best


def _joint_scores(joint: JointSpace, image_feats: np.ndarray, text_feats: np.ndarray) -> tuple[np.ndarray, int]:
    image_vectors = joint.embed_image(image_feats)
    return joint.embed_text(text_feats) @ image_vectors.T, image_vectors.shape[1]


def _by_size(summaries: dict[int, dict], dims: int) -> dict:
    return {**summaries[SELECTION_SIZE], "dims": dims, "by_size": {str(size): s for size, s in summaries.items()}}


def retrieval_queries(dataset: Dataset, data: TrainingSet) -> pd.DataFrame:
    """Queries of the retrieval estimate (``query_id, image``): every training caption for the image it was
    written for, and crowd-confirmed captions for the image the crowd confirmed (no child filter: evaluation)."""
    own = pd.DataFrame({"query_id": sorted(set(dataset.train["query_id"]) & set(data.text_row))})
    own["image"] = own["query_id"].map(caption_image)
    crowd = dataset.crowd[dataset.crowd["true_frac"] > CROWD_CONFIRMED][["query_id", "image"]]
    queries = pd.concat([own, crowd[crowd["query_id"].isin(data.text_row)]]).drop_duplicates(ignore_index=True)
    return queries[queries["image"].isin(data.image_row)].reset_index(drop=True)
