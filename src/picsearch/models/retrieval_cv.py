"""The retrieval estimate: search as the product does, on galleries of held-out training images, to choose the
joint space and to measure what reranking by the relevance score adds.

Per fold, the gallery is every image the fold holds out (200 of 1,000), searched with the captions that describe
them by the models fitted on the other folds. A query's *distractors* are the gallery's other images, less any
it is known to describe too (crowd-confirmed, or the image it was written for). Galleries of other sizes are
drawn from those distractors only, never from training images (the fold's model has seen them) nor from other
folds (their scores come from another model). ``beats`` of a query's ``pool`` distractors score at least its
target; in a gallery of N images (N - 1 distractors):

- when the pool holds N - 1 distractors, the rank is 1 + Hypergeometric(pool, beats, N - 1): the exact mean over
  every such gallery (at the pool's size, the direct rank);
- beyond the pool, each query's beat probability p is unknown: drawing the same distractors again would make a
  target that beats all 199 unbeatable among 999. p gets the posterior of an empirical-Bayes prior (a mixture
  of two betas fitted by maximum likelihood to every query's beats), and the rank is 1 + the posterior
  predictive beta-binomial count among N - 1 new distractors. On the default models, predicting the 200-image
  fold galleries from 49 distractors per query so lands within 0.005 of the direct R@1, R@5, R@10 and MRR
  (resampling with p = beats / pool overshoots R@1 by 0.2).

Recall@K, MRR and median rank are expectations over that distribution. Reranking depends on which distractors
are drawn together, so its ranks are Monte Carlo galleries drawn without replacement, at the sizes the folds hold.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Callable, Iterator

import numpy as np
import pandas as pd
from scipy import optimize, special, stats

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
"""Monte Carlo galleries per query and size for the reranked estimate (sizes up to a fold's gallery)."""


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


def fold_galleries(
    data: TrainingSet, queries: pd.DataFrame, folds: list[Split]
) -> Iterator[tuple[set[str], FoldGallery]]:
    """(training images, gallery of the held-out images) per fold."""
    for split in folds:
        train_images, test_images = split_images(data.evaluation["image"], split)
        yield train_images, fold_gallery(queries, test_images)


def beat_counts(scores: np.ndarray, gallery: FoldGallery) -> np.ndarray:
    """How many of each query's distractors score at least its target (ties count against, as in ranks)."""
    own = scores[np.arange(len(gallery.targets)), gallery.targets]
    return ((scores >= own[:, None]) & gallery.distractors).sum(axis=1)


PRIOR_STARTS = tuple(
    (np.log(w / (1 - w)), np.log(a1), np.log(a2), np.log(b1), np.log(b2))
    for w, a1, a2, b1, b2 in ((0.5, 0.3, 1.0, 60.0, 4.0), (0.3, 1.0, 0.3, 60.0, 5.0), (0.7, 0.5, 0.6, 30.0, 6.0))
)
"""Starting points of :meth:`BeatPrior.fit` (weight, alphas, betas): a component of rarely beaten queries and
one of often beaten ones, in either order and weight."""


@dataclass(frozen=True)
class BeatPrior:
    """A mixture of two betas over the queries' probability that a random distractor outscores the target."""

    weight: float
    alphas: tuple[float, float]
    betas: tuple[float, float]

    @classmethod
    def fit(cls, beats: np.ndarray, pool: np.ndarray) -> BeatPrior:
        """Maximum likelihood on the beta-binomial counts ``beats`` of ``pool`` (L-BFGS on log parameters, the
        best of :data:`PRIOR_STARTS`: a single start can settle with both components equal)."""

        def loss(theta: np.ndarray) -> float:
            log_joint = cls._of(theta)._log_joint(beats, pool)
            return -float(np.logaddexp(log_joint[:, 0], log_joint[:, 1]).sum())

        fits = [optimize.minimize(loss, np.array(start), method="L-BFGS-B", bounds=[(-10, 10)] + [(-7, 9)] * 4)
                for start in PRIOR_STARTS]
        return cls._of(min(fits, key=lambda fit: fit.fun).x)

    @classmethod
    def _of(cls, theta: np.ndarray) -> BeatPrior:
        a1, a2, b1, b2 = np.exp(theta[1:])
        return cls(float(1 / (1 + np.exp(-theta[0]))), (float(a1), float(a2)), (float(b1), float(b2)))

    def _log_joint(self, beats: np.ndarray, pool: np.ndarray) -> np.ndarray:
        """``(queries, 2)``: log P(component) + log P(beats | pool, component)."""
        weights = np.log([self.weight, 1 - self.weight])
        return np.column_stack([
            w + betabinom_logpmf(beats, pool, a, b) for w, a, b in zip(weights, self.alphas, self.betas)
        ])

    def predictive(self, beats: np.ndarray, pool: np.ndarray, draws: int) -> np.ndarray:
        """``(queries, draws + 1)``: posterior predictive distribution of how many of ``draws`` new distractors
        outscore each query's target, given ``beats`` of ``pool``."""
        log_joint = self._log_joint(beats, pool)
        responsibility = np.exp(log_joint - np.logaddexp(log_joint[:, :1], log_joint[:, 1:]))
        k = np.arange(draws + 1)[None, :]
        beats, pool = beats[:, None], pool[:, None]
        return sum(responsibility[:, [j]] * np.exp(betabinom_logpmf(k, draws, a + beats, b + pool - beats))
                   for j, (a, b) in enumerate(zip(self.alphas, self.betas)))


def betabinom_logpmf(k: np.ndarray, n: np.ndarray | int, a: np.ndarray | float, b: np.ndarray | float
                     ) -> np.ndarray:
    """``scipy.stats.betabinom.logpmf`` in closed form, for valid arguments only: the same values in less than
    half the time. The prior's fit evaluates it thousands of times, and scipy's argument handling dominated."""
    return (special.gammaln(n + 1) - special.gammaln(k + 1) - special.gammaln(n - k + 1)
            + special.betaln(k + a, n - k + b) - special.betaln(a, b))


def rank_distribution(beats: np.ndarray, pool: np.ndarray, size: int, prior: BeatPrior) -> np.ndarray:
    """``P[q, r]``: probability that query ``q``'s target ranks ``r + 1`` in a gallery of ``size`` images: exact
    (hypergeometric) where its pool holds ``size - 1`` distractors, else ``prior``'s posterior predictive."""
    draws = size - 1
    beats, pool = np.asarray(beats), np.asarray(pool)
    distribution = np.empty((len(beats), size))
    inside = pool >= draws
    k = np.arange(size)[None, :]
    distribution[inside] = stats.hypergeom.pmf(k, pool[inside, None], beats[inside, None], draws)
    distribution[~inside] = prior.predictive(beats[~inside], pool[~inside], draws)
    return distribution


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
    """Ranks of each query's target in ``draws`` random galleries of ``size`` images (fewer where its pool is
    smaller: then all of it), ``(queries, draws)``.

    ``joint[q, i]`` orders the gallery, and ``rerank[q, i]`` (when given) reorders its top ``candidates``, as
    search does.
    """
    rows = np.arange(len(gallery.targets))
    own_joint = joint[rows, gallery.targets][:, None]
    ranks = np.empty((len(rows), draws))
    for draw in range(draws):
        drawn, valid = draw_distractors(gallery, size - 1, rng)
        drawn_joint = np.where(valid, joint[rows[:, None], drawn], -np.inf)
        ranks[:, draw] = 1 + (drawn_joint >= own_joint).sum(axis=1)
        if rerank is not None:
            drawn_rerank = np.where(valid, rerank[rows[:, None], drawn], -np.inf)
            ranks[:, draw] = _reranked(ranks[:, draw], drawn_joint, drawn_rerank, rerank[rows, gallery.targets],
                                       candidates)
    return ranks


def _reranked(ranks: np.ndarray, joint: np.ndarray, rerank: np.ndarray, own: np.ndarray, candidates: int
              ) -> np.ndarray:
    """A target ranked within ``candidates`` by joint is outranked only by the candidates that outscore it."""
    kept = min(candidates - 1, joint.shape[1])
    if not kept:
        return np.where(ranks <= candidates, 1.0, ranks)
    top = np.argpartition(-joint, kept - 1, axis=1)[:, :kept]
    beaten = (np.take_along_axis(rerank, top, axis=1) >= own[:, None]).sum(axis=1)
    return np.where(ranks <= candidates, 1 + beaten, ranks)


def draw_distractors(gallery: FoldGallery, count: int, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    """``(queries, count)`` gallery columns drawn without replacement from each query's distractors, and which
    of them are real draws (a pool smaller than ``count`` fills only its first ``pool`` places)."""
    keys = np.where(gallery.distractors, rng.random(gallery.distractors.shape), np.inf)
    drawn = np.argsort(keys, axis=1)[:, :count]  # a random order of each query's distractors, the rest behind
    return drawn, np.arange(drawn.shape[1])[None, :] < gallery.pool[:, None]


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

    Each option's summary holds its numbers at :data:`SELECTION_SIZE`, ``dims``, ``by_size`` (the numbers at
    every size of :data:`GALLERY_SIZES`) and its ``beat_prior``; ``+rerank`` is measured at the sizes every
    fold's gallery holds. Returns the summaries and the option :func:`choose_joint` picks.
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
    summary = {option: _option_summary(np.concatenate(b), pool, dims[option]) for option, b in beats.items()}
    best = choose_joint(summary, n_queries=len(pool))
    rng = np.random.default_rng(seed)
    sizes = [size for size in GALLERY_SIZES if size <= min(len(gallery.images) for *_, gallery, _, _ in prepared)]
    reranked: dict[int, list[np.ndarray]] = {size: [] for size in sizes}
    for model, matchers, gallery, image_feats, text_feats in prepared:
        joint, _ = _joint_scores(JointSpace(matchers, joint_options(list(matchers))[best]), image_feats, text_feats)
        rerank = score_grid(model, image_feats, text_feats)
        for size in sizes:
            reranked[size].append(resampled_ranks(joint, gallery, size, rng, rerank=rerank).ravel())
    if sizes:
        summary[f"{best}+rerank"] = _by_size(
            {size: summarize(np.concatenate(r), digits=None) for size, r in reranked.items()}, dims[best]
        )
    return summary, best


def _option_summary(beats: np.ndarray, pool: np.ndarray, dims: int) -> dict:
    prior = BeatPrior.fit(beats, pool)
    summaries = {size: expected_summary(rank_distribution(beats, pool, size, prior)) for size in GALLERY_SIZES}
    return {**_by_size(summaries, dims), "beat_prior": asdict(prior)}


def _joint_scores(joint: JointSpace, image_feats: np.ndarray, text_feats: np.ndarray) -> tuple[np.ndarray, int]:
    image_vectors = joint.embed_image(image_feats)
    return joint.embed_text(text_feats) @ image_vectors.T, image_vectors.shape[1]


def _by_size(summaries: dict[int, dict], dims: int) -> dict:
    """The numbers at :data:`SELECTION_SIZE` (else the largest size measured), ``gallery_size`` saying which,
    ``dims``, and ``by_size``."""
    size = SELECTION_SIZE if SELECTION_SIZE in summaries else max(summaries)
    return {**summaries[size], "gallery_size": size, "dims": dims,
            "by_size": {str(n): s for n, s in summaries.items()}}


def retrieval_queries(dataset: Dataset, data: TrainingSet) -> pd.DataFrame:
    """Queries of the retrieval estimate (``query_id, image``): every training caption for the image it was
    written for, and crowd-confirmed captions for the image the crowd confirmed (no child filter: evaluation)."""
    own = pd.DataFrame({"query_id": sorted(set(dataset.train["query_id"]) & set(data.text_row))})
    own["image"] = own["query_id"].map(caption_image)
    crowd = dataset.crowd[dataset.crowd["true_frac"] > CROWD_CONFIRMED][["query_id", "image"]]
    queries = pd.concat([own, crowd[crowd["query_id"].isin(data.text_row)]]).drop_duplicates(ignore_index=True)
    return queries[queries["image"].isin(data.image_row)].reset_index(drop=True)
