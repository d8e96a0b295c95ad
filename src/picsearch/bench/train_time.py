"""Training-time benchmark: what `train`'s parallel fits and seeded dropout buy, against the old way, in one run.

``python -m picsearch.bench.train_time [--data DIR] [--cache DIR] [--model matching_head] [--workers 2] [--json]``

1. **Dropout** on a batch as the two-tower matcher sees it (256 rows × the width of its image input):
   ``torch.nn.Dropout`` (the baseline) against :class:`~picsearch.models.nn.SeededDropout`, ms per call.
2. **Grouped CV** of one candidate on the real training set (the 5 folds by image `train` uses): the folds fitted
   one after another (the baseline) against ``--workers`` fits at once on threads, one compute thread each, and
   once more with the first run's :class:`~picsearch.models.matching.MatcherMemo` (what `train`'s other
   training-data options get); wall seconds, and the largest difference between their predictions.

``--json`` prints one object with the figures of both tables.
"""

from __future__ import annotations

import argparse
import json
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Callable

import numpy as np
import torch
from rich.console import Console
from rich.table import Table

from picsearch.bench.common import load_features, training_set
from picsearch.models.evaluate import collect_cv, cross_validate, start_fits
from picsearch.models.nn import SeededDropout
from picsearch.models.selection import candidate_models
from picsearch.models.splits import grouped_folds
from picsearch.runtime import available_cpus, set_threads


def _ms_per_call(run: Callable[[], object], calls: int) -> float:
    run()
    start = time.perf_counter()
    for _ in range(calls):
        run()
    return (time.perf_counter() - start) / calls * 1000


def bench_dropout(width: int, rows: int = 256, p: float = 0.2, calls: int = 40) -> dict[str, float]:
    """ms per call of torch's dropout and of :class:`SeededDropout` on a (rows, width) batch, interleaved."""
    batch = torch.randn(rows, width)
    torch_dropout, seeded = torch.nn.Dropout(p), SeededDropout(p, seed=0)
    times: dict[str, list[float]] = {"torch.nn.Dropout": [], "SeededDropout": []}
    for _ in range(4):  # alternate, so a load swing on a shared machine hits both alike
        times["torch.nn.Dropout"].append(_ms_per_call(lambda: torch_dropout(batch), calls // 4))
        times["SeededDropout"].append(_ms_per_call(lambda: seeded(batch), calls // 4))
    return {name: float(np.median(values)) for name, values in times.items()}


def bench_cv(data_dir: str | None, cache: Path, model: str, workers: int) -> dict[str, float]:
    """Wall seconds of one candidate's grouped CV, sequential and on ``workers`` threads, plus agreement."""
    dataset, feats = load_features(data_dir, cache)
    encoders, data = training_set(dataset, feats, cache)
    folds = grouped_folds(data.evaluation["image"], 5, 0)
    factory = candidate_models(encoders)[model]
    start = time.perf_counter()
    alone = cross_validate(factory, data, dataset.expert, folds)
    sequential = time.perf_counter() - start
    runs = {"fresh": candidate_models(encoders)[model], "same memo": factory}
    seconds, differences = {}, {}
    for name, run_factory in runs.items():  # "same memo": the first run's MatcherMemo, as `train`'s data options
        start = time.perf_counter()
        with ThreadPoolExecutor(workers) as pool:
            together = collect_cv(start_fits(run_factory, data, folds, pool), data, dataset.expert, folds)
        seconds[name] = time.perf_counter() - start
        differences[name] = float(np.nanmax(np.abs(alone.predictions - together.predictions)))
    return {"sequential_s": sequential, "parallel_s": seconds["fresh"], "speedup": sequential / seconds["fresh"],
            "parallel_memo_s": seconds["same memo"], "speedup_memo": sequential / seconds["same memo"],
            "workers": workers, "max_prediction_difference": max(differences.values()),
            "width": encoders.layout.inputs(feats.image_vectors[:1]).shape[1]}


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", default=None)
    parser.add_argument("--cache", default="artifacts/cache")
    parser.add_argument("--model", default="matching_head")
    parser.add_argument("--workers", type=int, default=available_cpus())
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args(argv)
    set_threads(1)
    cv = bench_cv(args.data, Path(args.cache), args.model, args.workers)
    dropout = bench_dropout(cv["width"])
    if args.json:
        print(json.dumps({"dropout_ms": dropout, "cv": cv}))
        return
    console = Console()
    table = Table(title=f"dropout on a (256, {cv['width']}) batch, 1 thread")
    for column in ("layer", "ms per call", "speed-up vs torch.nn.Dropout"):
        table.add_column(column)
    for name, ms in dropout.items():
        table.add_row(name, f"{ms:.2f}", f"{dropout['torch.nn.Dropout'] / ms:.2f}x")
    console.print(table)
    table = Table(title=f"grouped CV of {args.model}, 5 folds, 1 compute thread per fit")
    for column in ("fits", "wall s", "speed-up vs one after another", "max |Δ prediction|"):
        table.add_column(column)
    table.add_row("one after another", f"{cv['sequential_s']:.1f}", "1.00x", "")
    table.add_row(f"{args.workers} at once", f"{cv['parallel_s']:.1f}", f"{cv['speedup']:.2f}x",
                  f"{cv['max_prediction_difference']:.1e}")
    table.add_row(f"{args.workers} at once, matchers from the first run's memo", f"{cv['parallel_memo_s']:.1f}",
                  f"{cv['speedup_memo']:.2f}x", "")
    console.print(table)


if __name__ == "__main__":
    main()
