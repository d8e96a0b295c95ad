"""Rerankers trained for ranking against today's rerank (the relevance score) and the joint space alone, in the
retrieval estimate's folds.

``python -m picsearch.bench.rerank [--data DIR] [--cache DIR] [--option expert] [--candidates 20 50]
[--draws 10] [--seed 0] [--check-pool 49] [--json FILE]``

Cross-validates the matching head as `picsearch train` does (5 folds by image), runs
:func:`~picsearch.models.retrieval_cv.retrieval_cv` for the chosen joint space (its own table is printed as a
check), then per fold fits, on the fold's training images only, a LightGBM lambdarank ranker and a pairwise
logistic baseline on :func:`~picsearch.models.rerank.training_lists` (lists from the head's inner folds: no
list's query image is in the fitting fold of the joint space that made it). Every ranking is measured on the
same random galleries of each fold's held-out images (sizes up to the fold's 200 drawn without replacement;
1,000 modelled as :mod:`picsearch.models.rerank` says), with ``--candidates`` reranked. Printed per
gallery size: R@1/R@5/R@10/MRR of each ranking, and each learned ranker's difference from today's rerank of
as many candidates, with the standard error of that difference over queries clustered by target image.
``--check-pool 49`` also predicts the 200-image galleries by that model from 49 distractors per query, the
check of the 1,000 row's method against galleries that are drawn.
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

import numpy as np
from rich.console import Console
from rich.table import Table

from picsearch.bench.common import load_features, training_set
from picsearch.bench.retrieval import ranking_table
from picsearch.models.evaluate import cross_validate
from picsearch.models.matching import JointSpace
from picsearch.models.matching_head import MatchingHead
from picsearch.models.rerank import (
    Cells, ListScorer, block_cosines, clustered_se, drawn_beats, drawn_lists, fit_lambdarank, fit_pairwise, joint_of,
    lambdarank_scorer, reranked_ranks, score_only, tail_counts, tail_ranks, thinned, training_lists,
)
from picsearch.models.retrieval_cv import (
    GALLERY_SIZES, BeatPrior, FoldGallery, beat_counts, fold_galleries, retrieval_cv, retrieval_queries, score_grid,
)
from picsearch.models.selection import TRAINING_DATA_OPTIONS, candidate_models, joint_options, matcher_factories
from picsearch.models.splits import grouped_folds
from picsearch.models.trainset import TrainingSet
from picsearch.storage import save_json

METRICS = ("recall@1", "recall@5", "recall@10", "mrr")


def per_query(ranks: np.ndarray) -> dict[str, np.ndarray]:
    """Each query's R@1/R@5/R@10/MRR averaged over its draws (``ranks``: ``(queries, draws)``)."""
    out = {f"recall@{k}": (ranks <= k).mean(axis=1) for k in (1, 5, 10)}
    out["mrr"] = (1.0 / ranks).mean(axis=1)
    return out


def fold_rankers(head: MatchingHead, data: TrainingSet, weights: dict[str, float], candidates: list[int]
                 ) -> dict[int, dict[str, ListScorer]]:
    """Per number of candidates: today's rerank and the two learned rankers, fitted on ``data`` only."""
    scorers: dict[int, dict[str, ListScorer]] = {}
    for n in candidates:
        lists = training_lists(head, data, weights, n)
        scorers[n] = {f"rerank@{n}": score_only, f"lambdarank@{n}": lambdarank_scorer(fit_lambdarank(lists)),
                      f"pairwise@{n}": fit_pairwise(lists)}
    return scorers


def fold_ranks(
    gallery: FoldGallery, cells: Cells, scorers: dict[int, dict[str, ListScorer]], size: int, prior: BeatPrior,
    draws: int, rng: np.random.Generator,
) -> dict[str, np.ndarray]:
    """``(queries, draws)`` ranks of the joint space and of every scorer in galleries of ``size``, the same
    galleries for all: drawn where each pool holds them, modelled beyond (:func:`tail_counts`)."""
    ranks: dict[str, list[np.ndarray]] = {}
    if size - 1 <= gallery.pool.max():
        for _ in range(draws):
            for n, named in scorers.items():
                joint_ranks, lists = drawn_lists(gallery, cells.joint, size, n, rng)
                ranks.setdefault("joint", []).append(joint_ranks)
                for name, scorer in named.items():
                    ranks.setdefault(name, []).append(reranked_ranks(joint_ranks, lists, cells, scorer))
    else:
        counts = {name: (n, tail_counts(gallery, cells, scorer, size, n, rng))
                  for n, named in scorers.items() for name, scorer in named.items()}
        for _ in range(draws):
            beats = drawn_beats(gallery, cells.joint, size, prior, rng)
            ranks.setdefault("joint", []).append(1.0 + beats)
            for name, (n, tail) in counts.items():
                ranks.setdefault(name, []).append(tail_ranks(tail, beats, n, rng))
    return {name: np.column_stack(r) for name, r in ranks.items()}


def galleries(gallery: FoldGallery, cells: Cells, prior: BeatPrior, check_pool: int | None,
              rng: np.random.Generator) -> dict[str, tuple[FoldGallery, int, BeatPrior]]:
    """Per label: (gallery, size, joint beat prior) to measure; with ``check_pool``, also the fold's size
    predicted from pools of ``check_pool`` distractors per query (a prior fitted on them), to set against the
    galleries drawn at that size."""
    measured = {str(size): (gallery, size, prior) for size in GALLERY_SIZES}
    if check_pool:
        small = thinned(gallery, check_pool, rng)
        small_prior = BeatPrior.fit(beat_counts(cells.joint, small), small.pool)
        measured[f"{len(gallery.images)} from {check_pool}"] = (small, len(gallery.images), small_prior)
    return measured


def measure(args: argparse.Namespace, console: Console) -> tuple[dict[str, dict[str, dict]], dict]:
    """Per ranking and gallery size: per-query metrics (pooled over folds) and each query's target image."""
    cache = Path(args.cache)
    dataset, feats = load_features(args.data, cache)
    encoders, data = training_set(dataset, feats, cache, args.option)
    folds = grouped_folds(data.evaluation["image"], 5, 0)
    start = time.perf_counter()
    cv = cross_validate(candidate_models(encoders)["matching_head"], data, dataset.expert, folds)
    queries = retrieval_queries(dataset, data)
    summary, best = retrieval_cv(data, queries, folds, cv.models, matcher_factories(encoders), lambda _: None)
    console.print(ranking_table(summary, best, f"matching_head on {args.option} (joint space {best})"))
    prior = BeatPrior(**summary[best]["beat_prior"])
    console.print(f"seconds: cross-validation and retrieval estimate {time.perf_counter() - start:.0f}")
    rng = np.random.default_rng(args.seed)
    results: dict[str, dict[str, list[dict[str, np.ndarray]]]] = {}
    targets: list[str] = []
    for (train_images, gallery), head in zip(fold_galleries(data, queries, folds), cv.models):
        fitted = time.perf_counter()
        weights = joint_options(list(head.matchers_))[best]
        scorers = fold_rankers(head, data.restrict(train_images), weights, args.candidates)
        joint = JointSpace(head.matchers_, weights)
        image_feats, text_feats = data.images(gallery.images), data.texts(gallery.query_ids)
        blocks = block_cosines(joint, image_feats, text_feats)
        cells = Cells(score_grid(head, image_feats, text_feats), joint_of(joint, blocks), blocks)
        targets += [gallery.images[t] for t in gallery.targets]
        for label, (measured, size, beat_prior) in galleries(gallery, cells, prior, args.check_pool, rng).items():
            for name, r in fold_ranks(measured, cells, scorers, size, beat_prior, args.draws, rng).items():
                results.setdefault(name, {}).setdefault(label, []).append(per_query(r))
        console.print(f"fold: rankers fitted and measured in {time.perf_counter() - fitted:.0f} s")
    pooled = {name: {size: {m: np.concatenate([f[m] for f in parts]) for m in METRICS}
                     for size, parts in by_size.items()} for name, by_size in results.items()}
    return pooled, {"targets": np.asarray(targets), "joint": best}


def report(pooled: dict[str, dict[str, dict]], targets: np.ndarray, title: str) -> tuple[Table, dict]:
    """The table, and its figures: each ranking's metrics, and each learned ranker's difference from
    ``rerank@n`` (same candidates) with its clustered standard error."""
    table = Table(title=title)
    for column in ("ranking", "gallery", *("R@1", "R@5", "R@10", "MRR"), "dR@5 vs rerank (SE)", "dMRR (SE)"):
        table.add_column(column)
    figures: dict = {}
    for name, by_size in pooled.items():
        for size, values in by_size.items():
            row = {m: float(values[m].mean()) for m in METRICS}
            baseline = pooled.get(f"rerank@{name.split('@')[1]}") if "@" in name else None
            deltas = ["", ""]
            if baseline is not None and not name.startswith("rerank@"):
                for i, m in enumerate(("recall@5", "mrr")):
                    diff = values[m] - baseline[size][m]
                    row[f"d_{m}"], row[f"se_{m}"] = float(diff.mean()), clustered_se(diff, targets)
                    deltas[i] = f"{row[f'd_{m}']:+.4f} ({row[f'se_{m}']:.4f})"
            figures.setdefault(name, {})[str(size)] = row
            table.add_row(name, str(size), *(f"{row[m]:.3f}" for m in METRICS), *deltas)
    return table, figures


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", default=None)
    parser.add_argument("--cache", default="artifacts/cache")
    parser.add_argument("--option", default="expert", choices=sorted(TRAINING_DATA_OPTIONS))
    parser.add_argument("--candidates", type=int, nargs="+", default=[20, 50])
    parser.add_argument("--draws", type=int, default=10)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--check-pool", type=int, default=None,
                        help="also predict the fold-size gallery from this many distractors per query")
    parser.add_argument("--json", default=None, help="also write the table's figures to this JSON file")
    args = parser.parse_args(argv)
    console = Console()
    pooled, meta = measure(args, console)
    title = f"rerankers, matching_head on {args.option}, joint space {meta['joint']}, {args.draws} draws"
    table, figures = report(pooled, meta["targets"], title)
    console.print(table)
    if args.json:
        save_json(Path(args.json), {"joint": meta["joint"], "draws": args.draws, "figures": figures})


if __name__ == "__main__":
    main()
