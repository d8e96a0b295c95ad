"""Search benchmark: store build time, index load time, memory per image, query latency and the
approximate stores' recall, for 1k..1M images and each vector store.

``python -m picsearch.bench.search [--artifacts DIR] [--sizes 1000 10000 100000 1000000]
[--store exact ann milvus] [--threads 1] [--json]``

Galleries are synthetic with the real dimensions, drawn from a pool of real photos (``--pool``: the
1,000 training photos by default; the 100 test photos make a gallery of near-duplicates, where the
top-10 differ by noise alone): each image's rerank vectors and raw features are a real photo's (drawn at random) and its joint vector mixes two real
images' joint vectors (weights 1 and up to 0.5) plus a little noise, renormalized. That keeps the
vectors on the real images' manifold, with many near neighbours, so retrieval, reranking and the
approximate stores do the work they do on real data (isotropic noise would make every vector
nearly orthogonal to every other, which no gallery is). The exact index is written once per size;
each other store is then filled from its stored vectors, as ``picsearch index --store`` migrates,
and timed as "build". Recall@10/@100 compare each store's top-k with the exact top-k of the same
visible images for the same queries. Milvus runs embedded (Milvus Lite) and only up to
``--milvus-max`` images: Lite is a single-process test server, not what a cluster measures. The index is written and read
through the real on-disk format (format 3 as `picsearch index` writes it: joint vectors as int4 codes with a
scale per matcher block, the reranker's own image vectors as int8 codes, memory-mapped); its disk per image is compared with the same index in format 2 (int8 codes
of the raw features in place of the rerank vectors, int8 joint vectors), measured from files written in the same run. Latency is
per query (one at a time), split into text encoding, retrieval (joint projection + store search) and reranking
(gather of the candidates' joint and rerank rows from the memory-mapped files + relevance model). Two baselines are timed in the same run: the same search with the text
encoder on PyTorch (the pipeline before ONNX Runtime), and scoring every image of the gallery with the
relevance model (no index, no candidates; skipped where its float32 copy of the rerank rows would not fit
comfortably in memory). Every timed query is distinct unless ``--queries`` exceeds the test queries, and no
query vector cache is used. ``--json`` prints one object with the table's figures instead.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import tempfile
import time
from pathlib import Path

import numpy as np
from rich.console import Console
from rich.table import Table

from picsearch.bench.common import bench_dataset
from picsearch.config import DEFAULT_ARTIFACTS, default_cache_dir
from picsearch.encoders import TextEncoder, get_image_encoder, get_text_encoder
from picsearch.features import embed_images
from picsearch.models import RelevanceBundle
from picsearch.index import GalleryIndex, NumpyStore, build_index, image_id, parse_store, read_manifest
from picsearch.index.codec import QuantizedRows, RowCodec, Segment, segments_of
from picsearch.index.stores import write_store
from picsearch.runtime import set_threads
from picsearch.search import Searcher
from picsearch.storage import save_json

SIZES = (1_000, 10_000, 100_000, 1_000_000)
FLOAT16_FROM = 1_000_000
OFFLINE_TEXT_ENCODERS = ("mpnet", "minilm")  # those that run on ONNX Runtime or PyTorch
BASELINE_MAX_BYTES = 2 * 1024**3
CHUNK = 100_000
MILVUS_MAX = 100_000


def synthetic_index(real: GalleryIndex, raw: np.ndarray, n: int, folder: Path, seed: int = 0) -> Path:
    """Write an ``n``-image index to ``folder`` built from ``real``'s rows and their raw features ``raw`` (see
    module doc); returns a float16 file of the synthetic rows' raw features, for :func:`format_2_disk`."""
    rng = np.random.default_rng(seed)
    pool_joint = np.asarray(real.joint, dtype=np.float32)
    dtype = "float16" if n >= FLOAT16_FROM else "float32"
    raw_path = folder.with_suffix(".features.npy")
    source = np.lib.format.open_memmap(raw_path, "w+", np.float16, (n, raw.shape[1]))
    rerank = np.lib.format.open_memmap(folder.with_suffix(".rerank.npy"), "w+", np.float16, (n, real.rerank.shape[1]))
    joint = np.empty((n, pool_joint.shape[1]), dtype=dtype)
    for start in range(0, n, CHUNK):
        pick = rng.integers(0, len(real), size=min(CHUNK, n - start))
        source[start : start + len(pick)] = raw[pick]
        rerank[start : start + len(pick)] = real.rerank[pick]
        other = pool_joint[rng.integers(0, len(real), size=len(pick))]
        weight = rng.uniform(0, 0.5, size=(len(pick), 1)).astype(np.float32)
        noise = rng.normal(0, 0.01, size=(len(pick), pool_joint.shape[1])).astype(np.float32)
        mixed = pool_joint[pick] + weight * other + noise
        joint[start : start + len(pick)] = mixed / np.linalg.norm(mixed, axis=1, keepdims=True)
    paths = [f"synthetic/{i:07d}.jpg" for i in range(n)]
    ids = [image_id(path) for path in paths]
    flags_from = rng.integers(0, len(real), size=n)
    GalleryIndex(
        root=real.root,
        ids=ids,
        paths=paths,
        hashes=[f"{i:040x}" for i in range(n)],
        rerank=rerank,
        child_prob=real.child_prob[flags_from],
        child=real.child[flags_from],
        joint=joint,
        meta=real.meta,
    ).save(folder)
    del source, rerank
    folder.with_suffix(".rerank.npy").unlink()
    return raw_path


def pool_features(real: GalleryIndex, image_encoder: str, cache: Path) -> np.ndarray:
    """The raw features of the pool index's photos (from the embedding cache its build filled), row-aligned."""
    paths = [real.absolute_path(row) for row in range(len(real))]
    embedded = embed_images(paths, get_image_encoder(image_encoder), cache, progress=False)
    by_path = dict(zip(map(str, embedded.paths), embedded.vectors))
    return np.stack([by_path[str(path)] for path in paths]).astype(np.float32)


def format_2_disk(folder: Path, raw_path: Path, fields: dict[str, tuple[int, int]]) -> int:
    """Bytes the index at ``folder`` would take in format 2: its files other than the rerank and joint vectors,
    plus the raw features at ``raw_path`` and the joint vectors as format 2 wrote them (int8 codes; features with a
    scale per field and column weights, joint vectors with one scale a row)."""
    index = GalleryIndex.load(folder)
    coded = {path for name in ("rerank", "joint") for path in index.data_dir.glob(f"{name}.*")}
    shared = sum(p.stat().st_size for p in folder.rglob("*") if p.is_file() and p not in coded)
    raw = np.load(raw_path, mmap_mode="r")
    codec = RowCodec.fit(raw, segments_of(fields, raw.shape[1]), 8, chunk=CHUNK)
    with tempfile.TemporaryDirectory(prefix="picsearch-format2-") as tmp:
        QuantizedRows.encode(raw, codec, chunk=CHUNK).save(Path(tmp), "features")
        QuantizedRows.encode(index.joint, RowCodec((Segment(0, index.joint.shape[1]),)), chunk=CHUNK).save(Path(tmp), "joint")
        return shared + sum(p.stat().st_size for p in Path(tmp).iterdir())


def percentiles(seconds: list[float]) -> tuple[float, float]:
    """p50 and p99 in milliseconds."""
    ms = np.asarray(seconds) * 1000
    return float(np.percentile(ms, 50)), float(np.percentile(ms, 99))


def time_queries(searcher: Searcher, queries: list[str], k: int = 5) -> dict[str, list[float]]:
    """Per query: text encoding, retrieval and reranking times (seconds), exactly as `search` runs them."""
    steps: dict[str, list[float]] = {"encode": [], "retrieve": [], "rerank": [], "total": []}
    for query in queries:
        t0 = time.perf_counter()
        text_feats = searcher.text_encoder.encode([query])
        t1 = time.perf_counter()
        rows = searcher._retrieve(text_feats, searcher._store, searcher.candidates)  # the steps of _rank, timed apart
        t2 = time.perf_counter()
        searcher._rerank(rows, text_feats, searcher.candidates, searcher.bundle.mapped_queries([query]))
        t3 = time.perf_counter()
        for step, seconds in zip(steps, (t1 - t0, t2 - t1, t3 - t2, t3 - t0)):
            steps[step].append(seconds)
    return steps


def time_feature_fetch(searcher: Searcher, queries: int, seed: int = 0) -> list[float]:
    """Per query: read what the reranker reads of ``candidates`` random rows (joint and rerank rows) from the
    memory-mapped files (random rows, not the ones a query just touched: what a gallery far larger than its
    page cache pays)."""
    rng, index, times = np.random.default_rng(seed), searcher.index, []
    for _ in range(queries):
        rows = np.sort(rng.choice(len(index), size=min(searcher.candidates, len(index)), replace=False))
        t0 = time.perf_counter()
        np.asarray(index.joint[rows], dtype=np.float32), np.asarray(index.rerank[rows], dtype=np.float32)
        times.append(time.perf_counter() - t0)
    return times


def time_baseline(searcher: Searcher, queries: list[str]) -> list[float]:
    """Per query: encode the text and score every image with the relevance model, then sort."""
    times = []
    for query in queries:
        t0 = time.perf_counter()
        text_feats = searcher.text_encoder.encode([query])
        scores = searcher.index.rerank_scores(searcher.bundle, np.arange(len(searcher.index)), text_feats)
        np.argsort(-scores)
        times.append(time.perf_counter() - t0)
    return times


def torch_twin(name: str) -> TextEncoder | None:
    """The text encoder ``name`` on PyTorch (the pipeline before ONNX Runtime); None for a hub encoder."""
    return get_text_encoder(f"{name}:torch") if name in OFFLINE_TEXT_ENCODERS else None


def switch_store(folder: Path, kind: str) -> float:
    """Fill store ``kind`` from the index's stored vectors and point the manifest at it; seconds taken."""
    index = GalleryIndex.load(folder)
    t0 = time.perf_counter()
    spec = write_store(parse_store(kind), folder, index.data_dir, index.ids, index.joint, ~index.child)
    seconds = time.perf_counter() - t0
    save_json(folder / "manifest.json", {**read_manifest(folder), "store": spec.to_json()})
    return seconds


def resident_bytes() -> int:
    """Resident memory of this process and its children (Milvus Lite serves from a child process)."""
    page = os.sysconf("SC_PAGE_SIZE")
    children: dict[int, list[int]] = {}
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        children.setdefault(int(fields[1]), []).append(int(stat.parent.name))
    total, todo = 0, [os.getpid()]
    while todo:
        pid = todo.pop()
        try:
            total += int(Path(f"/proc/{pid}/statm").read_text().split()[1]) * page
        except OSError:
            continue
        todo += children.get(pid, [])
    return total


def recall_against_exact(searcher: Searcher, queries: list[str], ks: tuple[int, ...] = (10, 100)) -> dict[int, float]:
    """Mean share of the exact top-k (visible images) that the searcher's store returns in its top-k."""
    visible = ~searcher.moderation.hidden()
    exact = NumpyStore(np.asarray(searcher.index.ids, dtype=str)[visible], searcher.index.joint[visible])
    joint = searcher.bundle.joint_text(searcher.text_encoder.encode(queries))
    truth, found = exact.search(joint, max(ks))[0], searcher._store.search(joint, max(ks))[0]
    return {k: float(np.mean([len(set(t[:k]) & set(f[:k])) / min(k, len(t)) for t, f in zip(truth, found)])) for k in ks}


def measure(
    folder: Path, artifacts: Path, n: int, kind: str, build_s: float, queries: list[str], baseline_queries: int,
    torch_encoder: TextEncoder | None = None, format_2: int | None = None,
) -> dict:
    """One row of the table: the index at ``folder`` (``n`` images) searched through store ``kind``
    (``format_2``: the bytes the same index takes in format 2)."""
    before = resident_bytes()
    t0 = time.perf_counter()
    searcher = Searcher.open(folder, artifacts)
    load_s = time.perf_counter() - t0
    resident = resident_bytes() - before
    time_queries(searcher, queries[:5])  # warm-up: first-call costs, page cache
    steps = time_queries(searcher, queries)
    row = {
        "n": n,
        "store": kind,
        "searched": int((~searcher.moderation.hidden()).sum()),
        "build_s": build_s,
        "load_s": load_s,
        "ram_per_image": resident / n,
        "disk_per_image": sum(p.stat().st_size for p in folder.rglob("*") if p.is_file()) / n,
        "disk_per_image_format2": format_2 / n if format_2 else None,
        **{step: percentiles(values) for step, values in steps.items()},
        **{f"recall@{k}": value for k, value in recall_against_exact(searcher, queries).items()},
        "fetch": percentiles(time_feature_fetch(searcher, len(queries))),
    }
    if kind == "exact" and torch_encoder is not None:
        onnx_encoder, searcher.text_encoder = searcher.text_encoder, torch_encoder
        time_queries(searcher, queries[:2])
        row["total_torch"] = percentiles(time_queries(searcher, queries[:baseline_queries])["total"])
        searcher.text_encoder = onnx_encoder
    if kind == "exact" and int(np.prod(searcher.index.rerank.shape)) * 4 <= BASELINE_MAX_BYTES:
        row["baseline"] = percentiles(time_baseline(searcher, queries[:baseline_queries]))
    return row


def measure_size(
    real_index: Path, raw: np.ndarray, artifacts: Path, n: int, stores: list[str], queries: list[str],
    baseline_queries: int, work: Path, torch_encoder: TextEncoder | None = None, milvus_max: int = MILVUS_MAX,
) -> list[dict]:
    """The rows of one gallery size: the exact index, then each other store filled from its vectors."""
    folder = work / f"index-{n}"
    t0 = time.perf_counter()
    raw_path = synthetic_index(GalleryIndex.load(real_index), raw, n, folder)
    build_s = time.perf_counter() - t0
    encoder = get_image_encoder(RelevanceBundle.load(artifacts).image_encoder)
    format_2 = format_2_disk(folder, raw_path, encoder.fields)
    raw_path.unlink()
    rows = [measure(folder, artifacts, n, "exact", build_s, queries, baseline_queries, torch_encoder, format_2)]
    for kind in stores:
        if kind != "exact" and not (kind == "milvus" and n > milvus_max):
            rows.append(measure(folder, artifacts, n, kind, switch_store(folder, kind), queries, baseline_queries))
    shutil.rmtree(folder)
    exact = rows[0]["retrieve"][0]
    for row in rows:
        row["retrieve_speedup"] = exact / row["retrieve"][0]
    return rows


def table(rows: list[dict]) -> Table:
    """The benchmark table: one row per gallery size and store."""
    out = Table(title="search per query (ms, p50 / p99); recall of the store's top-k against exact")
    for name in ("images", "visible", "store", "build s", "load s", "RAM B/img", "disk B/img", "format 2 B/img", "disk vs format 2", "encode", "retrieve", "rerank",
                 "total", "of rerank: feature fetch", "recall@10", "recall@100", "retrieve vs exact (p50)", "before: PyTorch encoder",
                 "speed-up (p50)", "baseline: score all", "speed-up (p50) "):
        out.add_column(name, justify="right")
    for row in rows:
        cells = [f"{row['n']:,}", f"{row['searched']:,}", row["store"], f"{row['build_s']:.1f}", f"{row['load_s']:.2f}",
                 f"{row['ram_per_image']:,.0f}", f"{row['disk_per_image']:,.0f}"]
        old = row["disk_per_image_format2"]
        cells += [f"{old:,.0f}", f"{row['disk_per_image'] / old:.2f}x"] if old else ["—", "—"]
        cells += [f"{row[s][0]:.1f} / {row[s][1]:.1f}" for s in ("encode", "retrieve", "rerank", "total", "fetch")]
        cells += [f"{row['recall@10']:.3f}", f"{row['recall@100']:.3f}", f"{row['retrieve_speedup']:.1f}x"]
        if "total_torch" in row:
            cells += [f"{row['total_torch'][0]:.1f} / {row['total_torch'][1]:.1f}",
                      f"{row['total_torch'][0] / row['total'][0]:.2f}x"]
        else:
            cells += ["—", "—"]
        if "baseline" in row:
            cells += [f"{row['baseline'][0]:.0f} / {row['baseline'][1]:.0f}", f"{row['baseline'][0] / row['total'][0]:.0f}x"]
        else:
            cells += ["—" if row["store"] != "exact" else "skipped (memory)", "—"]
        out.add_row(*cells)
    return out


def row_json(row: dict) -> dict:
    """A table row as plain JSON: each timed step as ``{"p50_ms", "p99_ms"}``."""
    return {
        key: {"p50_ms": round(value[0], 3), "p99_ms": round(value[1], 3)} if isinstance(value, tuple) else value
        for key, value in row.items()
    }


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--data", type=Path, default=None, help="dataset folder (else $PICSEARCH_DATA)")
    parser.add_argument("--artifacts", type=Path, default=DEFAULT_ARTIFACTS, help="trained models")
    parser.add_argument("--sizes", type=int, nargs="+", default=list(SIZES))
    parser.add_argument("--store", nargs="+", default=["exact"], choices=["exact", "ann", "milvus"],
                        help="vector stores to measure (exact is always measured: it is the baseline)")
    parser.add_argument("--pool", choices=["train", "test"], default="train",
                        help="real photos the synthetic rows are drawn from (train: 1,000, more varied than test's 100)")
    parser.add_argument("--cache", type=Path, default=None, help="embedding cache (default ARTIFACTS/cache)")
    parser.add_argument("--milvus-max", type=int, default=MILVUS_MAX, help="largest gallery measured on Milvus Lite")
    parser.add_argument("--queries", type=int, default=200, help="timed queries per size")
    parser.add_argument("--baseline-queries", type=int, default=10, help="timed queries of each baseline")
    parser.add_argument("--threads", type=int, default=1, help="compute threads (as `picsearch serve` runs)")
    parser.add_argument("--json", action="store_true", help="print one JSON object instead of the table")
    args = parser.parse_args(argv)
    threads = set_threads(args.threads)
    console = Console(width=200, stderr=args.json)
    dataset = bench_dataset(args.data)
    queries = dataset.test_queries["query_text"].tolist()
    queries = (queries * (args.queries // len(queries) + 1))[: args.queries]
    with tempfile.TemporaryDirectory(prefix="picsearch-bench-") as tmp:
        work = Path(tmp)
        real_index = work / "real"
        pool = dataset.train_images_dir if args.pool == "train" else dataset.test_images_dir
        build_index(pool, args.artifacts, real_index, args.cache, progress=False)
        bundle = RelevanceBundle.load(args.artifacts)
        cache = args.cache or default_cache_dir(args.artifacts)
        raw = pool_features(GalleryIndex.load(real_index), bundle.image_encoder, cache)
        torch_encoder = torch_twin(bundle.text_encoder)
        rows = []
        for n in args.sizes:
            rows += measure_size(real_index, raw, args.artifacts, n, args.store, queries, args.baseline_queries, work,
                                 torch_encoder, args.milvus_max)
            console.print(f"measured {n:,} images", style="dim")
    if args.json:
        print(json.dumps({"threads": threads, "queries": args.queries, "rows": [row_json(row) for row in rows]}, indent=1))
        return
    console.print(table(rows))
    console.print(
        f"{threads} compute thread(s). RAM: resident memory Searcher.open added (this process and Milvus Lite's); "
        "joint and rerank vectors stay memory-mapped on disk. Feature fetch: reading the reranked candidates' "
        "joint and rerank rows (random rows) from the memory-mapped files, part of rerank. Format 2: the same index with "
        "int8 codes of the raw features in place of the rerank vectors and int8 joint vectors, written in the same run. Visible: the images a query may return (child flags "
        "are drawn from the pool photos' flags); stores hold only these. Build: writing the exact index (synthetic rows "
        "included), or filling the store from it. Before: the same searches with the text encoder on PyTorch; baseline: relevance "
        "model on every image (no index); same queries, same run."
    )


if __name__ == "__main__":
    main()
