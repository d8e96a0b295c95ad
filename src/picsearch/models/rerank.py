"""A reranker trained on the retrieval task it serves: lists of joint-space candidates, ranked by LightGBM
lambdarank (or, as the simple baseline, a logistic model on pairs) on signals search computes cheaply per
(query, candidate).

Training lists mimic search on unseen photos: within a training set, the matching head's own inner folds give,
for each fold, a joint space (the head's matchers fitted without that fold's images) that ranks the fold's
held-out images for every positive caption of one of them; its top candidates form the list, labelled by the
caption's positive images. The relevance feature is the head's booster on those inner matchers, i.e. on the
very out-of-fold features it was fitted on.

:func:`reranked_ranks` measures a list scorer in galleries drawn as :mod:`picsearch.models.retrieval_cv` draws
them (same galleries for every scorer). Beyond a fold's gallery, a pool of 199 distractors holds about 4 of the
19 a gallery of 1,000 puts beside the target in a list of 20: redrawing those few would make a target that
outscores them unbeatable (the overshoot the estimate's beat prior avoids for the joint rank). So there the
rank is modelled as the estimate models the joint rank: the target's joint beats ``B`` from the estimate's
prior, then how many of its ``B`` beaters and of its ``candidates - 1 - B`` nearest misses the scorer puts above
it, each from the posterior predictive of a two-beta mixture fitted to what the scorer does in each query's
list at its pool (:func:`tail_counts`, :func:`tail_ranks`). Checked on real folds (``bench.rerank --check-pool
49``: 200-image galleries predicted from 49 distractors per query), the model undershoots today's reranked R@1 by
0.06 and its R@5 by 0.02, while the differences between scorers come out close to the drawn ones; at 1,000 the
reranked rows are a rough guide and their differences the figure to read.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from typing import Callable

import lightgbm as lgb
import numpy as np
import pandas as pd
from sklearn.linear_model import LogisticRegression

from picsearch.data.tables import caption_image
from picsearch.models.linear import fit_scaler, scale
from picsearch.models.matching import JointSpace, Matcher
from picsearch.models.matching_head import MatchingHead
from picsearch.models.retrieval_cv import BeatPrior, FoldGallery, beat_counts, draw_distractors
from picsearch.models.trainset import TrainingSet

ListScorer = Callable[[np.ndarray], np.ndarray]
"""Scores of candidate rows from their :func:`list_features` rows, ``(n, features) -> (n,)``."""

RANKER_PARAMS = {
    "objective": "lambdarank", "n_estimators": 200, "learning_rate": 0.05, "num_leaves": 15,
    "min_child_samples": 40, "subsample": 0.8, "subsample_freq": 1, "reg_lambda": 1.0, "n_jobs": 1,
    "verbose": -1, "random_state": 0,
}
"""Fixed, small: the relevance models' LightGBM settings with the lambdarank objective."""


def feature_names(blocks: list[str]) -> list[str]:
    """Names of :func:`list_features`' columns for a joint space of these matchers."""
    return ["score", "joint", *(f"cos_{name}" for name in blocks), "list_rank", "score_gap", "joint_gap"]


def block_cosines(joint: JointSpace, image_feats: np.ndarray, text_feats: np.ndarray) -> np.ndarray:
    """``(matchers, texts, images)``: each joint block's cosine, what an index's joint vectors give per block."""
    return np.stack([m.embed_text(text_feats) @ m.embed_image(image_feats).T for m in joint.matchers.values()])


def joint_of(joint: JointSpace, blocks: np.ndarray) -> np.ndarray:
    """The joint cosine from :func:`block_cosines` (each block weighted by its share)."""
    return np.tensordot(np.array(list(joint.weights.values())), blocks, axes=1)


def list_features(score: np.ndarray, joint: np.ndarray, blocks: np.ndarray, valid: np.ndarray) -> np.ndarray:
    """``(lists, candidates, features)`` of :func:`feature_names` from the candidates' relevance ``score``,
    ``joint`` cosine and ``blocks`` cosines (``(matchers, lists, candidates)``); ``valid`` marks real entries
    (the list's rank and maxima are over those)."""
    joint_valid = np.where(valid, joint, -np.inf)
    order = np.argsort(-joint_valid, axis=1, kind="stable")
    rank = np.empty_like(order)
    np.put_along_axis(rank, order, np.arange(order.shape[1])[None, :], axis=1)
    best_score = np.where(valid, score, -np.inf).max(axis=1, keepdims=True)
    columns = [score, joint, *blocks, rank, score - best_score, joint - joint_valid.max(axis=1, keepdims=True)]
    return np.stack(columns, axis=-1).astype(np.float32)


@dataclass(frozen=True)
class RankLists:
    """Candidate lists: ``images[l, c]`` (``""`` where a list is shorter), their ``features`` and ``labels``
    (1 = one of the query's positive images), ``valid`` entries, and each list's ``query_ids``."""

    query_ids: list[str]
    images: np.ndarray
    features: np.ndarray
    labels: np.ndarray
    valid: np.ndarray

    @classmethod
    def concat(cls, parts: list[RankLists]) -> RankLists:
        return cls(
            [q for part in parts for q in part.query_ids],
            *(np.concatenate([getattr(part, name) for part in parts]) for name in ("images", "features", "labels",
                                                                                   "valid")),
        )


def fold_lists(
    head: MatchingHead, data: TrainingSet, held_out: set[str], fitted: tuple[dict[str, Matcher], dict[str, np.ndarray]],
    weights: dict[str, float], candidates: int,
) -> RankLists:
    """Lists of one inner fold: ``fitted`` (matchers, references) were fitted without ``held_out``; every
    positive caption of a held-out image searches the held-out images in their joint space (``weights``), and
    its top ``candidates`` make its list. Lists holding no positive are left out (they teach a ranker nothing)."""
    images = sorted(held_out)
    positives = data.positives[data.positives["image"].isin(held_out)]
    relevant = positives.groupby("query_id")["image"].agg(set)
    query_ids = relevant.index.tolist()
    relevant = [right | ({caption_image(q)} & held_out) for q, right in zip(query_ids, relevant)]
    joint = JointSpace(fitted[0], weights)
    image_feats, text_feats = data.images(images), data.texts(query_ids)
    blocks = block_cosines(joint, image_feats, text_feats)
    cosine = joint_of(joint, blocks)
    top = np.argsort(-cosine, axis=1, kind="stable")[:, :candidates]
    score = head.predict_cells(image_feats, text_feats, top, fitted=fitted)
    take = lambda grid: np.take_along_axis(grid, top, axis=-1)  # noqa: E731
    valid = np.ones(top.shape, dtype=bool)
    features = list_features(score, take(cosine), np.stack([take(b) for b in blocks]), valid)
    names = np.asarray(images)[top]
    labels = np.array([[name in right for name in row] for row, right in zip(names, relevant)], dtype=np.int32)
    kept = labels.any(axis=1)
    return RankLists([q for q, k in zip(query_ids, kept) if k], names[kept], features[kept], labels[kept], valid[kept])


def training_lists(head: MatchingHead, data: TrainingSet, weights: dict[str, float], candidates: int) -> RankLists:
    """:func:`fold_lists` of every inner fold of ``head`` fitted on ``data`` (its matchers come from the memo)."""
    folds = list(head.inner_matchers(data))
    size = min(candidates, *(len(held_out) for held_out, *_ in folds))
    return RankLists.concat([
        fold_lists(head, data, held_out, (matchers, references), weights, size)
        for held_out, matchers, references in folds
    ])


def _rows(lists: RankLists) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    return lists.features[lists.valid], lists.labels[lists.valid], lists.valid.sum(axis=1)


def fit_lambdarank(lists: RankLists) -> lgb.Booster:
    """LightGBM lambdarank (:data:`RANKER_PARAMS`) on the lists, its NDCG truncated at the list length."""
    x, y, group = _rows(lists)
    ranker = lgb.LGBMRanker(**RANKER_PARAMS, lambdarank_truncation_level=lists.valid.shape[1])
    return ranker.fit(x, y, group=group).booster_


def lambdarank_scorer(booster: lgb.Booster) -> ListScorer:
    """A fitted lambdarank booster as a :data:`ListScorer`."""
    return lambda rows: booster.predict(rows, num_threads=1)


def fit_pairwise(lists: RankLists) -> ListScorer:
    """The baseline: logistic regression on the standardized feature differences of every (positive,
    negative) pair of one list, both ways round; it scores a candidate by its linear margin."""
    x, _, _ = _rows(lists)
    scaler = fit_scaler(x)
    scaled = scale(scaler, lists.features.reshape(-1, x.shape[1])).reshape(lists.features.shape)
    diffs = []
    for row, labels, valid in zip(scaled, lists.labels, lists.valid):
        good, bad = row[(labels > 0) & valid], row[(labels == 0) & valid]
        diffs.append((good[:, None, :] - bad[None, :, :]).reshape(-1, x.shape[1]))
    pairs = np.concatenate(diffs)
    model = LogisticRegression(fit_intercept=False, max_iter=1000).fit(
        np.vstack([pairs, -pairs]), np.r_[np.ones(len(pairs)), np.zeros(len(pairs))]
    )
    weights = model.coef_.ravel()
    return lambda rows: scale(scaler, rows) @ weights


def score_only(rows: np.ndarray) -> np.ndarray:
    """Today's rerank as a :data:`ListScorer`: the relevance score alone."""
    return rows[:, 0]


@dataclass(frozen=True)
class Cells:
    """The signals of every (query, gallery image) of one fold: relevance ``score``, ``joint`` and ``blocks``."""

    score: np.ndarray
    joint: np.ndarray
    blocks: np.ndarray

    def features(self, columns: np.ndarray) -> np.ndarray:
        """:func:`list_features` of the lists ``columns`` (gallery columns, -1 where a list is shorter)."""
        valid = columns >= 0
        safe = np.where(valid, columns, 0)
        take = lambda grid: np.take_along_axis(grid, safe, axis=-1)  # noqa: E731
        return list_features(take(self.score), take(self.joint), np.stack([take(b) for b in self.blocks]), valid)


def drawn_lists(
    gallery: FoldGallery, joint: np.ndarray, size: int, candidates: int, rng: np.random.Generator
) -> tuple[np.ndarray, np.ndarray]:
    """One random gallery of ``size`` per query (its pool where smaller), as in ``resampled_ranks``: the target's
    joint rank, and its list ``(queries, candidates)``: the target, then the best ``candidates - 1`` distractors
    by joint (-1 where the gallery has fewer)."""
    rows = np.arange(len(gallery.targets))
    drawn, valid = draw_distractors(gallery, size - 1, rng)
    drawn_joint = np.where(valid, joint[rows[:, None], drawn], -np.inf)
    ranks = 1.0 + (drawn_joint >= joint[rows, gallery.targets][:, None]).sum(axis=1)
    top = np.argsort(-drawn_joint, axis=1, kind="stable")[:, : candidates - 1]
    others = np.where(np.take_along_axis(valid, top, axis=1), np.take_along_axis(drawn, top, axis=1), -1)
    return ranks, np.column_stack([gallery.targets, others])


def drawn_beats(gallery: FoldGallery, joint: np.ndarray, size: int, prior: BeatPrior, rng: np.random.Generator
                ) -> np.ndarray:
    """How many distractors outscore each query's target by joint in one random gallery of ``size``, drawn
    from ``prior``'s posterior predictive given its pool (the estimate's model of ranks beyond the pool)."""
    predictive = prior.predictive(beat_counts(joint, gallery), gallery.pool, size - 1)
    return (rng.random(len(predictive))[:, None] > np.cumsum(predictive, axis=1)).sum(axis=1)


@dataclass(frozen=True)
class TailCounts:
    """What a scorer does to a query's list at its pool (:func:`tail_counts`): of the ``beater_pool`` joint
    beaters in the list, ``beater_wins`` outscore the target; of the ``miss_pool`` nearest joint misses,
    ``miss_wins`` do; ``priors`` (beaters, misses) are fitted to those counts over the queries."""

    beater_wins: np.ndarray
    beater_pool: np.ndarray
    miss_wins: np.ndarray
    miss_pool: np.ndarray
    priors: tuple[BeatPrior, BeatPrior]


def tail_counts(gallery: FoldGallery, cells: Cells, scorer: ListScorer, size: int, candidates: int,
                rng: np.random.Generator) -> TailCounts:
    """The counts of :class:`TailCounts` from each query's list over its whole pool. In a gallery of ``size``
    the candidates below the target are its nearest misses there; the misses counted here are as many of the
    pool's as take the same share of its misses (at least one where the list has one)."""
    _, lists = drawn_lists(gallery, cells.joint, len(gallery.images), candidates, rng)
    wins = _wins(lists, cells, scorer)
    rows = np.arange(len(lists))[:, None]
    entries = lists[:, 1:] >= 0
    beater = entries & (cells.joint[rows, np.maximum(lists[:, 1:], 0)] >= cells.joint[rows[:, 0], lists[:, 0]][:, None])
    misses = entries & ~beater
    share = np.rint((gallery.pool - beat_counts(cells.joint, gallery)) * (candidates - 1) / (size - 1))
    miss_pool = np.clip(share, 1, misses.sum(axis=1)).astype(int)
    nearest = misses & (np.cumsum(misses, axis=1) <= miss_pool[:, None])  # list entries come best joint first
    counts = [(wins & beater).sum(axis=1), beater.sum(axis=1), (wins & nearest).sum(axis=1), nearest.sum(axis=1)]
    seen = [counts[1] > 0, counts[3] > 0]
    priors = tuple(BeatPrior.fit(counts[2 * i][seen[i]], counts[2 * i + 1][seen[i]]) for i in range(2))
    return TailCounts(*counts, priors)


def tail_ranks(counts: TailCounts, joint_beats: np.ndarray, candidates: int, rng: np.random.Generator
               ) -> np.ndarray:
    """Reranked ranks in galleries beyond the pool, given each query's joint beats there: a target outside
    the ``candidates`` keeps its joint rank; inside, it is outscored by a draw from each prior's posterior
    predictive among its ``B`` beaters and its ``candidates - 1 - B`` nearest misses."""
    ranks = 1.0 + joint_beats
    for beats in np.unique(joint_beats[joint_beats < candidates]):
        rows = np.flatnonzero(joint_beats == beats)
        outscored = np.zeros(len(rows))
        for prior, wins, pool, draws in (
            (counts.priors[0], counts.beater_wins, counts.beater_pool, beats),
            (counts.priors[1], counts.miss_wins, counts.miss_pool, candidates - 1 - beats),
        ):
            predictive = prior.predictive(wins[rows], pool[rows], int(draws))
            outscored += (rng.random(len(rows))[:, None] > np.cumsum(predictive, axis=1)).sum(axis=1)
        ranks[rows] = 1.0 + outscored
    return ranks


def _wins(lists: np.ndarray, cells: Cells, scorer: ListScorer) -> np.ndarray:
    """``(lists, candidates - 1)``: which of the other entries ``scorer`` puts at or above the target."""
    features = cells.features(lists)
    scores = scorer(features.reshape(-1, features.shape[-1])).reshape(lists.shape)
    scores = np.where(lists >= 0, scores, -np.inf)
    return scores[:, 1:] >= scores[:, :1]


def thinned(gallery: FoldGallery, pool: int, rng: np.random.Generator) -> FoldGallery:
    """``gallery`` with each query's distractors cut to ``pool`` drawn at random."""
    drawn, valid = draw_distractors(gallery, pool, rng)
    distractors = np.zeros_like(gallery.distractors)
    np.put_along_axis(distractors, drawn, valid, axis=1)
    return replace(gallery, distractors=distractors)


def reranked_ranks(
    joint_ranks: np.ndarray, lists: np.ndarray, cells: Cells, scorer: ListScorer
) -> np.ndarray:
    """The target's rank after ``scorer`` reorders its list: where it made the list (joint rank within the
    list's length), 1 + the other candidates scoring at least as high (ties against it); else its joint rank."""
    return np.where(joint_ranks <= lists.shape[1], 1.0 + _wins(lists, cells, scorer).sum(axis=1), joint_ranks)


def clustered_se(values: np.ndarray, groups: pd.Series | np.ndarray) -> float:
    """Standard error of the mean of ``values`` when rows of one group (e.g. the target image's queries) are
    not independent: the spread of the groups' summed deviations."""
    deviations = pd.Series(values - values.mean()).groupby(np.asarray(groups)).sum()
    return float(np.sqrt((deviations**2).sum()) / len(values))
