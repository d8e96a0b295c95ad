"""Benchmark the offline encoders: ``python -m picsearch.bench.embed [--data DIR] [--n 128] [--workers]``.

Prints one Markdown table: images/s end to end (hash, decode, preprocess, forward, cache write,
through :func:`picsearch.features.embed_images` into an empty cache) and forward-only (best of 2), texts/s
for the text encoders on PyTorch, on ONNX Runtime and on PyTorch in bfloat16 (each against PyTorch), peak resident
memory so far, floating-point operations per item (counted by ``torch.utils.flop_counter``) and the share of this
CPU's peak, estimated in the same run from a large float32 matmul (the baseline; a share of 1.0 means matmul speed).

``--workers`` prints another table instead: the default image encoder and both batch runtimes of the default
text encoder (float32 ONNX Runtime and bfloat16) end to end into an empty cache, with the CPUs used three ways:
one model call at a time on every thread (the baseline), one call at a time on one thread, and one call per CPU at
one thread each (what `demo`, `train`, `index` and `embed` do).
"""

from __future__ import annotations

import argparse
import resource
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

import numpy as np
import torch
from torch.utils.flop_counter import FlopCounterMode

from picsearch.bench.common import bench_dataset
from picsearch.data.files import list_images
from picsearch.data.images import read_image
from picsearch.encoders import (
    DEFAULT_IMAGE_ENCODER,
    DEFAULT_TEXT_ENCODER,
    ImageEncoder,
    TextEncoder,
    get_image_encoder,
    get_text_encoder,
)
from picsearch.features.embed import DEFAULT_BATCH, embed_images, embed_texts
from picsearch.runtime import available_cpus, set_threads

IMAGE_ENCODERS = ("effnet-lite0", "effnet-lite2", "effnet-lite0+lite2", "effnet-lite0+lite2+zoom")
TEXT_ENCODERS = ("minilm", "mpnet")
REPEATS = 2  # speeds are best-of-2 (the machine is shared)


@dataclass(frozen=True)
class Row:
    encoder: str
    end_to_end: float  # items/s
    forward: float  # items/s
    unit: str
    flops: float  # per item
    peak_rss_mib: float


def matmul_gflops(size: int = 2048, repeats: int = 5) -> float:
    """Best-of float32 matmul speed (GFLOP/s): the baseline standing for this CPU's peak."""
    a, b = torch.randn(size, size), torch.randn(size, size)
    torch.mm(a, b)
    return 2 * size**3 / _seconds(lambda: torch.mm(a, b), repeats) / 1e9


def _seconds(work: Callable[[], object], repeats: int = 1) -> float:
    """Best-of-``repeats`` wall time: the least disturbed run on a shared machine."""
    best = float("inf")
    for _ in range(repeats):
        start = time.perf_counter()
        work()
        best = min(best, time.perf_counter() - start)
    return best


def _embed_into_empty_cache(paths: list[Path], encoder: ImageEncoder, batch_size: int, workers: int | None = None) -> None:
    with tempfile.TemporaryDirectory() as cache:
        embed_images(paths, encoder, cache, batch_size=batch_size, progress=False, forward_workers=workers)


def _texts_into_empty_cache(texts: list[str], encoder: TextEncoder, workers: int) -> None:
    with tempfile.TemporaryDirectory() as cache:
        embed_texts(texts, encoder, cache, progress=False, forward_workers=workers)


def _peak_rss_mib() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # Linux reports KiB


def _flops(work: Callable[[], object]) -> int:
    with FlopCounterMode(display=False) as counter:
        work()
    return counter.get_total_flops()


def bench_image_encoder(name: str, paths: list[Path], batch_size: int) -> list[Row]:
    """:func:`bench_image_backend` on PyTorch (today's baseline) and on ONNX Runtime, in the same run."""
    return [bench_image_backend(f"{name}:{backend}", paths, batch_size) for backend in ("torch", "onnx")]


def bench_image_backend(name: str, paths: list[Path], batch_size: int) -> Row:
    """End-to-end and forward-only speed of one image encoder on ``paths`` (model loaded beforehand); FLOPs are
    counted on PyTorch."""
    encoder = get_image_encoder(name)
    arrays = np.stack([encoder.preprocess(read_image(path)) for path in paths])
    encoder.encode_arrays(arrays[:batch_size])  # load weights, warm up
    forward = _seconds(
        lambda: [encoder.encode_arrays(arrays[i : i + batch_size]) for i in range(0, len(arrays), batch_size)],
        REPEATS,
    )
    end_to_end = _seconds(lambda: _embed_into_empty_cache(paths, encoder, batch_size), REPEATS)
    counted = get_image_encoder(name.replace(":onnx", ":torch"))
    flops = _flops(lambda: counted.encode_arrays(arrays[:1]))
    n = len(paths)
    return Row(name, n / end_to_end, n / forward, "images", flops, _peak_rss_mib())


def bench_text_encoder(name: str, texts: list[str]) -> list[Row]:
    """Texts/s of one text encoder on PyTorch (the baseline), ONNX Runtime and PyTorch in bfloat16, in the same run
    (forward includes tokenization; no cache). FLOPs are counted on the PyTorch run, for all."""
    rows = []
    flops = 0.0
    for backend in ("torch", "onnx", "torch-bf16"):
        encoder = get_text_encoder(f"{name}:{backend}")
        encoder.encode(texts[:8])
        seconds = _seconds(lambda: encoder.encode(texts), REPEATS)
        flops = flops or _flops(lambda: encoder.encode(texts)) / len(texts)
        rate = len(texts) / seconds
        rows.append(Row(f"{name}:{backend}", rate, rate, "texts", flops, _peak_rss_mib()))
    return rows


def worker_layouts() -> list[tuple[str, int, int]]:
    """(label, compute threads, model calls at once): the baseline first."""
    cpus = available_cpus()
    return [
        (f"1 call at a time, {cpus} threads (baseline)", cpus, 1),
        ("1 call at a time, 1 thread", 1, 1),
        (f"{cpus} calls at once, 1 thread each", 1, cpus),
    ]


def bench_workers(paths: list[Path], texts: list[str], batch_size: int) -> str:
    """Markdown table: images/s of the default image encoder and texts/s of the default text encoder's runtimes
    (float32 ONNX Runtime, the baseline, and bfloat16), end to end, in each of :func:`worker_layouts` (fresh
    encoders per layout, so their sessions take its thread count; models loaded beforehand)."""
    runtimes = [f"{DEFAULT_TEXT_ENCODER}:{backend}" for backend in ("onnx", "torch-bf16")]
    header = "| layout | images/s | vs baseline |" + "".join(f" texts/s {name} | vs baseline |" for name in runtimes)
    lines = [header, "|---|" + "---:|" * (2 + 2 * len(runtimes))]
    base: list[float] = []
    for label, threads, workers in worker_layouts():
        set_threads(threads)
        images = get_image_encoder(DEFAULT_IMAGE_ENCODER)
        images.encode_arrays(np.stack([images.preprocess(read_image(paths[0]))]))
        rates = [len(paths) / _seconds(lambda: _embed_into_empty_cache(paths, images, batch_size, workers), REPEATS)]
        for name in runtimes:
            text = get_text_encoder(name)
            text.encode(texts[:8])
            rates.append(len(texts) / _seconds(lambda: _texts_into_empty_cache(texts, text, workers), REPEATS))
        base = base or [rates[0]] + [rates[1]] * len(runtimes)
        lines.append(f"| {label} |" + "".join(f" {rate:.1f} | {rate / b:.2f}x |" for rate, b in zip(rates, base)))
    return "\n".join(lines)


def table(rows: list[Row], peak_gflops: float) -> str:
    """Markdown table of the rows; share = achieved forward GFLOP/s over the matmul baseline."""
    lines = [
        "| encoder | unit | end-to-end /s | forward /s | vs :torch | GFLOP per item | forward GFLOP/s | share of peak "
        "| peak RSS MiB |",
        "|---|---|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for row in rows:
        achieved = row.flops * row.forward / 1e9
        before = next((r for r in rows if r.encoder == f"{row.encoder.partition(':')[0]}:torch"), row)
        lines.append(
            f"| {row.encoder} | {row.unit} | {row.end_to_end:.1f} | {row.forward:.1f} | {row.end_to_end / before.end_to_end:.2f}x "
            f"| {row.flops / 1e9:.3f} | {achieved:.1f} | {achieved / peak_gflops:.2f} | {row.peak_rss_mib:.0f} |"
        )
    lines.append(f"| baseline: float32 matmul 2048² | | | | | | {peak_gflops:.1f} | 1.00 | |")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", help="dataset folder (else $PICSEARCH_DATA, else /datasets/image_search)")
    parser.add_argument("--n", type=int, default=128, help="images to embed per encoder (texts: 4x)")
    parser.add_argument("--batch-size", type=int, default=DEFAULT_BATCH, help="images per forward pass")
    parser.add_argument("--threads", type=int, default=None, help="compute threads (default: one per CPU)")
    parser.add_argument("--workers", action="store_true", help="only compare thread and worker layouts")
    args = parser.parse_args(argv)

    dataset = bench_dataset(args.data)
    paths = list_images(dataset.train_images_dir)[: args.n]
    texts = list(dict.fromkeys(dataset.query_texts().values()))[: 4 * args.n]
    if args.workers:
        print(f"{len(paths)} images, {len(texts)} texts, batch {args.batch_size}\n")
        print(bench_workers(paths, texts, args.batch_size))
        return
    threads = set_threads(args.threads)
    peak = matmul_gflops()
    rows = [row for name in IMAGE_ENCODERS for row in bench_image_encoder(name, paths, args.batch_size)]
    rows += [row for name in TEXT_ENCODERS for row in bench_text_encoder(name, texts)]
    peak = max(peak, matmul_gflops())  # measured before and after: the less disturbed one
    print(f"{len(paths)} images, {len(texts)} texts, batch {args.batch_size}, compute threads {threads}\n")
    print(table(rows, peak))


if __name__ == "__main__":
    main()
