"""Training-time benchmark: what `train`'s parallel fits and faster kernels buy, against the old way, in one run.

``python -m picsearch.bench.train_time [--data DIR] [--cache DIR] [--model matching_head] [--workers 2] [--json]``

1. **Kernels** `train` runs thousands of times, the library's way (the baseline) against the project's, ms per
   call on the shapes of the real data:
   - dropout on a batch as the two-tower matcher sees it (256 rows × the width of its image input):
     ``torch.nn.Dropout`` against :class:`~picsearch.models.nn.SeededDropout`;
   - an AdamW step on the two-tower's parameters: torch's default against the fused one (:func:`~picsearch.models.nn.adamw`);
   - the distinct rows of 5,000 vectors of the pooled width (1,000 distinct): ``np.unique(axis=0)`` against
     :func:`~picsearch.models.vectors.unique_rows`;
   - the beta-binomial log pmf of 6,000 queries' beat counts: ``scipy.stats.betabinom`` against
     :func:`~picsearch.models.retrieval_cv.betabinom_logpmf`.
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
from scipy import stats
from rich.console import Console
from rich.table import Table

from picsearch.bench.common import load_features, training_set
from picsearch.models.evaluate import collect_cv, cross_validate, start_fits
from picsearch.models.nn import SeededDropout, adamw
from picsearch.models.retrieval_cv import betabinom_logpmf
from picsearch.models.selection import candidate_models
from picsearch.models.splits import grouped_folds
from picsearch.models.vectors import unique_rows
from picsearch.runtime import available_cpus, set_threads


def _ms_per_call(run: Callable[[], object], calls: int) -> float:
    run()
    start = time.perf_counter()
    for _ in range(calls):
        run()
    return (time.perf_counter() - start) / calls * 1000


def _interleaved_ms(runs: dict[str, Callable[[], object]], calls: int) -> dict[str, float]:
    """Median ms per call of each run, alternated in four rounds so that a load swing on a shared machine hits
    them alike."""
    times: dict[str, list[float]] = {name: [] for name in runs}
    for _ in range(4):
        for name, run in runs.items():
            times[name].append(_ms_per_call(run, max(1, calls // 4)))
    return {name: float(np.median(values)) for name, values in times.items()}


def _adamw_steps(width: int, dim: int = 256, text_width: int = 768) -> dict[str, Callable[[], object]]:
    """One AdamW step on the two-tower's parameter shapes, torch's default and the project's."""
    def stepper(optimizer: Callable[[list[torch.nn.Parameter]], torch.optim.Optimizer]) -> Callable[[], object]:
        params = [torch.nn.Parameter(torch.randn(*shape)) for shape in ((dim, width), (dim,), (dim, text_width), (dim,))]
        for param in params:
            param.grad = torch.randn_like(param)
        return optimizer(params).step

    return {"torch.optim.AdamW": stepper(lambda p: torch.optim.AdamW(p, lr=1e-3, weight_decay=1e-2)),
            "adamw (fused)": stepper(lambda p: adamw(p, lr=1e-3, weight_decay=1e-2))}


def bench_kernels(width: int, pooled: int, rows: int = 256, calls: int = 40) -> dict[str, dict[str, float]]:
    """Per kernel of the module docstring: ms per call of the baseline and of the project's version (in that
    order), interleaved."""
    rng = np.random.default_rng(0)
    batch, p = torch.randn(rows, width), 0.2
    torch_dropout, seeded = torch.nn.Dropout(p), SeededDropout(p, seed=0)
    vectors = rng.normal(size=(1000, pooled)).astype(np.float32)[rng.integers(0, 1000, 5000)]
    beats, pool = rng.integers(0, 150, 6000), rng.integers(150, 200, 6000)
    runs = {
        "dropout": {"torch.nn.Dropout": lambda: torch_dropout(batch), "SeededDropout": lambda: seeded(batch)},
        "AdamW step": _adamw_steps(width),
        "distinct rows": {"np.unique(axis=0)": lambda: np.unique(vectors, axis=0, return_inverse=True),
                          "unique_rows": lambda: unique_rows(vectors)},
        "beta-binomial log pmf": {"scipy.stats.betabinom": lambda: stats.betabinom.logpmf(beats, pool, 0.5, 30.0),
                                  "betabinom_logpmf": lambda: betabinom_logpmf(beats, pool, 0.5, 30.0)},
    }
    slow = {"distinct rows": max(4, calls // 10)}  # np.unique takes most of a second
    return {kernel: _interleaved_ms(pair, slow.get(kernel, calls)) for kernel, pair in runs.items()}


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
            "width": encoders.layout.inputs(feats.image_vectors[:1]).shape[1],
            "pooled": encoders.layout.pooled[1] - encoders.layout.pooled[0]}


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
    kernels = bench_kernels(cv["width"], cv["pooled"])
    if args.json:
        print(json.dumps({"kernels_ms": kernels, "cv": cv}))
        return
    console = Console()
    table = Table(title=f"kernels of train, 1 thread (input width {cv['width']}, pooled width {cv['pooled']})")
    for column in ("kernel", "baseline", "ms", "project's", "ms", "speed-up"):
        table.add_column(column)
    for kernel, times in kernels.items():
        (baseline, baseline_ms), (ours, ms) = times.items()
        table.add_row(kernel, baseline, f"{baseline_ms:.2f}", ours, f"{ms:.2f}", f"{baseline_ms / ms:.2f}x")
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
