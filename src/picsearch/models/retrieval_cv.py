"""The retrieval estimate: search as the product does, on galleries of held-out training images, to choose the
joint space and to measure what reranking by the relevance score adds."""

from __future__ import annotations

from typing import Callable, Iterator

import numpy as np
import pandas as pd

from picsearch.data.tables import Dataset, caption_image
from picsearch.metrics import rank_of, ranks_of_targets, summarize
from picsearch.models.matching import JointSpace, Matcher, MatcherFactory, fit_matchers
from picsearch.models.matching_head import MatchingHead
from picsearch.models.relevance import RelevanceModel
from picsearch.models.selection import choose_joint, joint_options
from picsearch.models.splits import Split, split_images
from picsearch.models.trainset import TrainingSet
from picsearch.policy.filter import CROWD_CONFIRMED

RERANK_CANDIDATES = 20
GALLERY_SIZE = 100
"""The retrieval estimate searches galleries of this size, the size of test_images/."""
GALLERIES = 3
"""Random galleries per fold in the retrieval estimate."""


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


def matchers_of(model: RelevanceModel, factories: dict[str, MatcherFactory], data: TrainingSet) -> dict[str, Matcher]:
    """The model's own fitted matchers, or matchers fitted on ``data``'s positives for models without any."""
    return model.matchers_ if isinstance(model, MatchingHead) else fit_matchers(factories, *data.positive_feats())


def retrieval_cv(
    data: TrainingSet, queries: pd.DataFrame, folds: list[Split], fold_models: list[RelevanceModel],
    factories: dict[str, MatcherFactory], progress: Callable[[str], None], seed: int = 0,
) -> tuple[dict[str, dict[str, float]], str]:
    """Per fold, :data:`GALLERIES` random galleries of :data:`GALLERY_SIZE` held-out images, queried with the
    captions (``query_id, image``) that describe them.

    ``fold_models`` are the selected model fitted on each fold (their matchers are reused when they have
    some). Returns metrics and dimensions per joint-space option plus ``<best>+rerank`` (top candidates
    reranked by the model's score), and the option :func:`choose_joint` picks.
    """
    rng = np.random.default_rng(seed)
    ranks: dict[str, list[np.ndarray]] = {}
    dims: dict[str, int] = {}
    prepared = []
    for split, model in zip(folds, fold_models):
        progress("retrieval estimate")
        train_images, test_images = split_images(data.evaluation["image"], split)
        matchers = matchers_of(model, factories, data.restrict(train_images))
        for gallery, query_ids, targets in _galleries(queries, sorted(test_images), rng):
            image_feats, text_feats = data.images(gallery), data.texts(query_ids)
            for option, weights in joint_options(list(matchers)).items():
                joint = JointSpace(matchers, weights)
                image_vectors = joint.embed_image(image_feats)
                dims[option] = image_vectors.shape[1]
                ranks.setdefault(option, []).append(
                    retrieval_ranks(image_vectors, joint.embed_text(text_feats), targets)
                )
            prepared.append((model, matchers, image_feats, text_feats, targets))
    summary = {option: _summary(np.concatenate(r), dims[option]) for option, r in ranks.items()}
    best = choose_joint(summary, n_queries=sum(len(r) for r in next(iter(ranks.values()))))
    reranked = []
    for model, matchers, image_feats, text_feats, targets in prepared:
        joint = JointSpace(matchers, joint_options(list(matchers))[best])
        reranked.append(retrieval_ranks(
            joint.embed_image(image_feats), joint.embed_text(text_feats), targets,
            rerank=lambda rows, qrows: model.predict(image_feats[rows], text_feats[qrows]),
        ))
    summary[f"{best}+rerank"] = _summary(np.concatenate(reranked), dims[best])
    return summary, best


def _summary(ranks: np.ndarray, dims: int) -> dict[str, float]:
    return {**summarize(ranks, digits=None), "dims": dims}


def _galleries(
    queries: pd.DataFrame, images: list[str], rng: np.random.Generator
) -> Iterator[tuple[list[str], list[str], np.ndarray]]:
    """(sorted gallery, query ids, target rows) for random galleries drawn from ``images``.

    A caption written for another gallery image is left out: that query would have two right answers.
    """
    size = min(GALLERY_SIZE, len(images))
    for _ in range(GALLERIES):
        gallery = sorted(rng.choice(images, size, replace=False))
        inside = set(gallery)
        author = queries["query_id"].map(caption_image)
        chosen = queries[queries["image"].isin(inside) & ((author == queries["image"]) | ~author.isin(inside))]
        yield gallery, chosen["query_id"].tolist(), np.searchsorted(gallery, chosen["image"].to_numpy())


def retrieval_queries(dataset: Dataset, data: TrainingSet) -> pd.DataFrame:
    """Queries of the retrieval estimate (``query_id, image``): every training caption for the image it was
    written for, and crowd-confirmed captions for the image the crowd confirmed (no child filter: evaluation)."""
    own = pd.DataFrame({"query_id": sorted(set(dataset.train["query_id"]) & set(data.text_row))})
    own["image"] = own["query_id"].map(caption_image)
    crowd = dataset.crowd[dataset.crowd["true_frac"] > CROWD_CONFIRMED][["query_id", "image"]]
    queries = pd.concat([own, crowd[crowd["query_id"].isin(data.text_row)]]).drop_duplicates(ignore_index=True)
    return queries[queries["image"].isin(data.image_row)].reset_index(drop=True)
