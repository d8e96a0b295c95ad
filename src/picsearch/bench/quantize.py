"""Query encoding benchmark: one text encoder on each of its runtimes, one query at a time, in the same run.

``python -m picsearch.bench.quantize [--data DIR] [--encoder mpnet] [--backends onnx onnx-int8] [--texts 300]
[--threads 1] [--json]``

The queries are a fixed sample of distinct training captions (``train_dataset.csv``, never the test queries).
Each is encoded alone by every backend in turn (round robin, so a load swing on a shared machine hits all
alike); printed per backend: p50 / p90 milliseconds per query, the speed-up over the first backend (the
baseline), and the smallest and mean cosine of its vectors to the baseline's. ``--json`` prints one object,
keyed by backend, with the same figures.
"""

from __future__ import annotations

import argparse
import json
import time

import numpy as np
import pandas as pd
from rich.console import Console
from rich.table import Table

from picsearch.bench.common import bench_dataset
from picsearch.encoders import get_text_encoder
from picsearch.runtime import set_threads


def caption_sample(train: pd.DataFrame, n: int, seed: int = 0) -> list[str]:
    """``n`` distinct training captions drawn with ``seed`` (the same ones on every run)."""
    texts = sorted(set(train["query_text"].astype(str).str.strip()))
    pick = np.random.default_rng(seed).choice(len(texts), size=min(n, len(texts)), replace=False)
    return [texts[i] for i in sorted(pick)]


def bench_backends(encoder: str, backends: list[str], texts: list[str]) -> dict[str, dict[str, float]]:
    """Per backend of ``encoder``: p50/p90 ms per query, speed-up over ``backends[0]``, cosine to its vectors."""
    encoders = {backend: get_text_encoder(f"{encoder}:{backend}") for backend in backends}
    for model in encoders.values():
        model.encode(texts[:3])  # load and warm up before timing
    vectors: dict[str, list[np.ndarray]] = {backend: [] for backend in backends}
    times: dict[str, list[float]] = {backend: [] for backend in backends}
    for text in texts:
        for backend, model in encoders.items():
            t0 = time.perf_counter()
            vectors[backend].append(model.encode([text])[0])
            times[backend].append((time.perf_counter() - t0) * 1000)
    base = np.stack(vectors[backends[0]])
    rows = {}
    for backend in backends:
        cosine = np.sum(np.stack(vectors[backend]) * base, axis=1)  # unit vectors
        p50, p90 = np.percentile(times[backend], [50, 90])
        rows[backend] = {"p50_ms": float(p50), "p90_ms": float(p90), "min_cosine": float(cosine.min()),
                         "mean_cosine": float(cosine.mean())}
    for row in rows.values():
        row["speedup_p50"] = rows[backends[0]]["p50_ms"] / row["p50_ms"]
    return rows


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", default=None)
    parser.add_argument("--encoder", default="mpnet")
    parser.add_argument("--backends", nargs="+", default=["onnx", "onnx-int8"], help="the first is the baseline")
    parser.add_argument("--texts", type=int, default=300)
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args(argv)
    set_threads(args.threads)
    texts = caption_sample(bench_dataset(args.data).train, args.texts)
    rows = bench_backends(args.encoder, args.backends, texts)
    if args.json:
        print(json.dumps(rows))
        return
    table = Table(title=f"{args.encoder}: {len(texts)} training captions, one at a time, {args.threads} thread(s)")
    for column in ("backend", "p50 ms", "p90 ms", f"speed-up vs {args.backends[0]}", "min cosine", "mean cosine"):
        table.add_column(column)
    for backend, row in rows.items():
        table.add_row(backend, f"{row['p50_ms']:.1f}", f"{row['p90_ms']:.1f}", f"{row['speedup_p50']:.2f}x",
                      f"{row['min_cosine']:.4f}", f"{row['mean_cosine']:.4f}")
    Console().print(table)


if __name__ == "__main__":
    main()
