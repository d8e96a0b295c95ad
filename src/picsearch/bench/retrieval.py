"""The retrieval estimate of `picsearch train` alone, for comparing changes to the joint space or the scorer
without a full training run.

``python -m picsearch.bench.retrieval [--data DIR] [--cache DIR] [--option combined] [--model matching_head]``

Cross-validates one relevance model on one training-data option (the same 5 folds by image as `train`), then
runs :func:`~picsearch.models.retrieval_cv.retrieval_cv` on its fold models. Printed: the chosen joint space and
its reranked ranking at every gallery size (R@1/R@5/R@10/MRR), the model's CV RMSE and tau_c (the Flickr8k-Expert
protocol, and on the held-out pairs the child filter keeps), and the wall time of each part.
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

from rich.console import Console
from rich.table import Table

from picsearch.config import resolve_data_dir
from picsearch.data import load_dataset
from picsearch.encoders import DEFAULT_IMAGE_ENCODER, DEFAULT_TEXT_ENCODER
from picsearch.features import dataset_features
from picsearch.models.evaluate import cross_validate
from picsearch.models.retrieval_cv import retrieval_cv, retrieval_queries
from picsearch.models.selection import TRAINING_DATA_OPTIONS, candidate_models, matcher_factories
from picsearch.models.splits import grouped_folds
from picsearch.models.train import encoders_of
from picsearch.models.trainset import build_training_set


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", default=None)
    parser.add_argument("--cache", default="artifacts/cache")
    parser.add_argument("--option", default="combined", choices=sorted(TRAINING_DATA_OPTIONS))
    parser.add_argument("--model", default="matching_head")
    args = parser.parse_args(argv)
    console = Console()
    dataset, cache = load_dataset(resolve_data_dir(args.data)), Path(args.cache)
    feats = dataset_features(dataset, DEFAULT_IMAGE_ENCODER, DEFAULT_TEXT_ENCODER, cache)
    encoders = encoders_of(feats, DEFAULT_IMAGE_ENCODER, DEFAULT_TEXT_ENCODER, cache)
    option = TRAINING_DATA_OPTIONS[args.option]
    data = build_training_set(dataset, feats, encoders.layout, option.target, crowd_rows=option.crowd_rows)
    folds = grouped_folds(data.evaluation["image"], 5, 0)
    start = time.perf_counter()
    cv = cross_validate(candidate_models(encoders)[args.model], data, dataset.expert, folds)
    fitted = time.perf_counter()
    summary, joint = retrieval_cv(
        data, retrieval_queries(dataset, data), folds, cv.models, matcher_factories(encoders), lambda _: None
    )
    searched = time.perf_counter()
    table = Table(title=f"retrieval estimate, {args.model} on {args.option} (joint space {joint})")
    for column in ("ranking", "gallery", "R@1", "R@5", "R@10", "MRR"):
        table.add_column(column)
    for name in (joint, f"{joint}+rerank"):
        for size, s in summary[name]["by_size"].items():
            table.add_row(name, size, *(f"{s[k]:.3f}" for k in ("recall@1", "recall@5", "recall@10", "mrr")))
    console.print(table)
    m = cv.summary()
    console.print(
        f"CV RMSE {m['rmse']:.4f} (filtered {m['rmse_filtered']:.4f}); tau_c {m['tau_c_expert']:.4f} "
        f"(filtered {m['tau_c_expert_filtered']:.4f}); tau_b crowd {m['tau_b_crowd']:.4f}"
    )
    console.print(f"seconds: cross-validation {fitted - start:.0f}, retrieval estimate {searched - fitted:.0f}")


if __name__ == "__main__":
    main()
