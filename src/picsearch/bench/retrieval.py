"""The retrieval estimate of `picsearch train` alone, for comparing changes to the joint space or the scorer
without a full training run.

``python -m picsearch.bench.retrieval [--data DIR] [--cache DIR] [--option combined] [--model matching_head]
[--queries-by ENCODER] [--image-encoder NAME]``

Cross-validates one relevance model on one training-data option (the same 5 folds by image as `train`), then
runs :func:`~picsearch.models.retrieval_cv.retrieval_cv` on its fold models. Printed: the chosen joint space and
its reranked ranking at every gallery size (R@1/R@5/R@10/MRR), the model's CV RMSE and tau_c (the Flickr8k-Expert
protocol, and on the held-out pairs the child filter keeps), and the wall time of each part.

``--queries-by mpnet:onnx-int8`` measures the ranking a second time, the same fold models (fitted on the cached
text vectors) with only the queries' texts re-encoded by that encoder, one text at a time: what search does
when the index and the models come from cached vectors and each query is encoded on the fly.
"""

from __future__ import annotations

import argparse
import dataclasses
import time
from pathlib import Path

import numpy as np
import pandas as pd
from rich.console import Console
from rich.table import Table

from picsearch.bench.common import load_features, training_set
from picsearch.encoders import DEFAULT_IMAGE_ENCODER, TextEncoder, get_text_encoder
from picsearch.models.evaluate import cross_validate
from picsearch.models.retrieval_cv import retrieval_cv, retrieval_queries
from picsearch.models.selection import TRAINING_DATA_OPTIONS, candidate_models, matcher_factories
from picsearch.models.splits import grouped_folds
from picsearch.models.trainset import TrainingSet


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", default=None)
    parser.add_argument("--cache", default="artifacts/cache")
    parser.add_argument("--option", default="combined", choices=sorted(TRAINING_DATA_OPTIONS))
    parser.add_argument("--model", default="matching_head")
    parser.add_argument("--queries-by", default=None, help="also rank with the queries encoded by this text encoder")
    parser.add_argument("--image-encoder", default=DEFAULT_IMAGE_ENCODER, help="image encoder of the features")
    args = parser.parse_args(argv)
    console = Console()
    cache = Path(args.cache)
    dataset, feats = load_features(args.data, cache, args.image_encoder)
    encoders, data = training_set(dataset, feats, cache, args.option, image_encoder=args.image_encoder)
    folds = grouped_folds(data.evaluation["image"], 5, 0)
    start = time.perf_counter()
    cv = cross_validate(candidate_models(encoders)[args.model], data, dataset.expert, folds)
    fitted = time.perf_counter()
    queries = retrieval_queries(dataset, data)
    runs = {"cached text vectors": data}
    if args.queries_by:
        encoder = get_text_encoder(args.queries_by)
        runs[f"queries by {args.queries_by}"] = requeried(data, dataset.query_texts(), queries, encoder)
    for label, run in runs.items():
        summary, joint = retrieval_cv(run, queries, folds, cv.models, matcher_factories(encoders), lambda _: None)
        console.print(ranking_table(summary, joint, f"{args.model} on {args.option} (joint space {joint}), {label}"))
    searched = time.perf_counter()
    m = cv.summary()
    console.print(
        f"CV RMSE {m['rmse']:.4f} (filtered {m['rmse_filtered']:.4f}); tau_c {m['tau_c_expert']:.4f} "
        f"(filtered {m['tau_c_expert_filtered']:.4f}); tau_b crowd {m['tau_b_crowd']:.4f}"
    )
    console.print(f"seconds: cross-validation {fitted - start:.0f}, retrieval estimate {searched - fitted:.0f}")


def ranking_table(summary: dict[str, dict], joint: str, title: str) -> Table:
    """R@1/R@5/R@10/MRR of the joint space ``joint`` and of its reranking at every gallery size."""
    table = Table(title=f"retrieval estimate, {title}")
    for column in ("ranking", "gallery", "R@1", "R@5", "R@10", "MRR"):
        table.add_column(column)
    for name in (joint, f"{joint}+rerank"):
        for size, s in summary[name]["by_size"].items():
            table.add_row(name, size, *(f"{s[k]:.3f}" for k in ("recall@1", "recall@5", "recall@10", "mrr")))
    return table


def requeried(data: TrainingSet, texts: dict[str, str], queries: pd.DataFrame, encoder: TextEncoder) -> TrainingSet:
    """``data`` with the vectors of the ``queries``' texts (``texts``: query_id -> text) re-encoded by
    ``encoder``, one text at a time (as search encodes a query); every other vector as it was."""
    ids = sorted(set(queries["query_id"]))
    rows = [data.text_row[query_id] for query_id in ids]
    text_feats = data.text_feats.copy()
    text_feats[rows] = np.concatenate([encoder.encode([texts[query_id]]) for query_id in ids])
    return dataclasses.replace(data, text_feats=text_feats)


if __name__ == "__main__":
    main()
