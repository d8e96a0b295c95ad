"""Web load benchmark: concurrent clients against `picsearch serve` on loopback, for a bounded time.

``python -m picsearch.bench.web_load --index INDEX [--clients 16] [--seconds 20] [--threads 1] [--json]``

Starts the server (`picsearch serve`) in a child process on 127.0.0.1 and a free port, then runs
phases of ``--clients`` concurrent HTTP clients (httpx, asyncio), each sending its next request as
soon as the last one answered: ``/api/search`` for ``--seconds`` over a fixed mix of queries (one of
them blocked by the policy) while one more client asks ``/healthz`` 20 times a second (health under load: a probe,
not a second load), then shorter phases
on cached thumbnails and ``/healthz`` alone (the server's floor). The search phase is run on three servers in
the same run: micro-batched (the default), micro-batched with the LRU of query vectors (the mix repeats, so
nearly every query is a hit), and one search at a time (``--max-batch 1``, today's pipeline before
micro-batching). The baseline calls ``Searcher.search`` in process, one query at a time, without HTTP, with the
server's thread limits. Reports requests/s, p50/p99 latency and errors (``--json``: one object keyed by phase);
the servers are stopped at the end, and the exit status is 1 when any request failed.
"""

from __future__ import annotations

import argparse
import asyncio
import itertools
import json
import socket
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Sequence

import httpx
import numpy as np
from rich.console import Console
from rich.table import Table

HOST = "127.0.0.1"  # loopback only: the benchmark never listens on a network interface
STARTUP_SECONDS = 180
PROBE_PAUSE = 0.05
"""Seconds between health probes under load: 20 a second, more often than load balancers ask. Asked back to back,
the probe was itself a load: 470 requests/s, which took CPU from the searches it was meant to watch."""
QUERIES = (
    "a dog runs through the water",
    "a black dog and a brown dog play in the grass",
    "people climbing a rock wall",
    "a man rides a bicycle down a dirt path",
    "a crowd on a city street",
    "a skier jumps in the snow",
    "two people sit on a bench by the lake",
    "a surfer rides a wave",
    "a group of people on a mountain",
    "a woman in a red coat walks past a shop",
    "a little girl in a pink dress",  # blocked: answered with the disclaimer
    "a brown horse in a field",
)


@dataclass
class Phase:
    """Latencies (seconds) and failures of one timed phase."""

    name: str
    clients: int
    seconds: float = 0.0
    latencies: list[float] = field(default_factory=list)
    errors: list[str] = field(default_factory=list)

    @property
    def requests(self) -> int:
        return len(self.latencies) + len(self.errors)

    @property
    def rate(self) -> float:
        return self.requests / self.seconds if self.seconds else 0.0

    def percentile_ms(self, q: float) -> float:
        return float(np.percentile(self.latencies, q) * 1000) if self.latencies else float("nan")

    def to_json(self) -> dict:
        """The table's figures of this phase."""
        return {
            "clients": self.clients, "requests": self.requests, "req_per_s": round(self.rate, 2),
            "p50_ms": round(self.percentile_ms(50), 2), "p99_ms": round(self.percentile_ms(99), 2),
            "errors": len(self.errors),
        }


async def _client(
    http: httpx.AsyncClient, urls: Callable[[], str], deadline: float, phase: Phase, pause: float = 0.0
) -> None:
    """Requests one after another until ``deadline``, ``pause`` seconds apart (a probe) or back to back (a load)."""
    while time.perf_counter() < deadline:
        await asyncio.sleep(pause)
        url = urls()
        start = time.perf_counter()
        try:
            response = await http.get(url)
        except httpx.HTTPError as exc:
            phase.errors.append(f"{url}: {type(exc).__name__}: {exc}")
            continue
        if response.status_code == 200:
            phase.latencies.append(time.perf_counter() - start)
        else:
            phase.errors.append(f"{url}: HTTP {response.status_code}: {response.text[:200]}")


async def _load(
    base: str, name: str, urls: Callable[[], str], clients: int, seconds: float, pause: float = 0.0
) -> Phase:
    phase = Phase(name, clients)
    limits = httpx.Limits(max_connections=clients, max_keepalive_connections=clients)
    async with httpx.AsyncClient(base_url=base, limits=limits, timeout=30) as http:
        start = time.perf_counter()
        await asyncio.gather(*(_client(http, urls, start + seconds, phase, pause) for _ in range(clients)))
        phase.seconds = time.perf_counter() - start
    return phase


def load(base: str, name: str, paths: list[str], clients: int, seconds: float) -> Phase:
    """``clients`` concurrent clients requesting ``paths`` round-robin for ``seconds``."""
    cycle = itertools.cycle(paths)
    return asyncio.run(_load(base, name, lambda: next(cycle), clients, seconds))


def load_with_health(base: str, name: str, paths: list[str], clients: int, seconds: float) -> tuple[Phase, Phase]:
    """:func:`load`, and a health probe meanwhile: one more client asking ``/healthz`` every :data:`PROBE_PAUSE`."""
    cycle = itertools.cycle(paths)

    async def both() -> tuple[Phase, Phase]:
        return await asyncio.gather(
            _load(base, name, lambda: next(cycle), clients, seconds),
            _load(base, f"/healthz during {name}", lambda: "/healthz", 1, seconds, PROBE_PAUSE),
        )

    return asyncio.run(both())


def direct(index: Path, queries: list[str], k: int, seconds: float, threads: int) -> Phase:
    """The baseline: ``Searcher.search`` in this process, one query at a time, no HTTP."""
    from picsearch.runtime import set_threads
    from picsearch.search import Searcher

    set_threads(threads)  # as the server does
    searcher = Searcher.open(index)
    for query in queries:  # warm-up, as the server was
        searcher.search(query, k=k)
    phase = Phase("in-process search (baseline)", 1)
    start = time.perf_counter()
    for query in itertools.cycle(queries):
        if time.perf_counter() - start >= seconds:
            break
        began = time.perf_counter()
        searcher.search(query, k=k)
        phase.latencies.append(time.perf_counter() - began)
    phase.seconds = time.perf_counter() - start
    return phase


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind((HOST, 0))
        return sock.getsockname()[1]


def start_server(index: Path, port: int, thumbs: Path, threads: int, options: Sequence[str] = ()) -> subprocess.Popen:
    """`picsearch serve` (with ``options``) in a child process; returns once `/healthz` answers."""
    command = [sys.executable, "-c", "from picsearch.interfaces.cli import main; main()", "serve"]
    command += ["--index", str(index), "--host", HOST, "--port", str(port), "--thumbs", str(thumbs)]
    command += ["--threads", str(threads), *options]
    server = subprocess.Popen(command, stdout=subprocess.DEVNULL)
    deadline = time.monotonic() + STARTUP_SECONDS
    while time.monotonic() < deadline:
        if server.poll() is not None:
            raise RuntimeError(f"`picsearch serve` exited with status {server.returncode} before answering")
        try:
            if httpx.get(f"http://{HOST}:{port}/healthz", timeout=2).status_code == 200:
                return server
        except httpx.HTTPError:
            pass
        time.sleep(0.25)
    stop_server(server)
    raise RuntimeError(f"`picsearch serve` did not answer within {STARTUP_SECONDS} s")


def stop_server(server: subprocess.Popen) -> None:
    server.terminate()
    try:
        server.wait(timeout=15)
    except subprocess.TimeoutExpired:
        server.kill()
        server.wait()


def table(phases: list[Phase], baseline: Phase) -> Table:
    out = Table(title=f"picsearch serve on {HOST}: throughput and latency")
    for column in ("endpoint", "clients", "seconds", "requests", "req/s", "p50 ms", "p99 ms", "errors", "req/s vs baseline"):
        out.add_column(column, justify="left" if column == "endpoint" else "right")
    for phase in [*phases, baseline]:
        out.add_row(
            phase.name,
            str(phase.clients),
            f"{phase.seconds:.1f}",
            f"{phase.requests:,}",
            f"{phase.rate:,.1f}",
            f"{phase.percentile_ms(50):.1f}",
            f"{phase.percentile_ms(99):.1f}",
            str(len(phase.errors)),
            f"{phase.rate / baseline.rate:.2f}x" if baseline.rate else "-",
        )
    return out


# The server set-ups whose /api/search phases are compared in one run; the first is the default.
SETUPS = {
    "/api/search": ["--query-cache", "0"],
    "/api/search (query cache)": [],
    "/api/search (one at a time)": ["--query-cache", "0", "--max-batch", "1"],
}


def run(
    index: Path, clients: int, seconds: float, short_seconds: float, k: int, threads: int, console: Console,
    as_json: bool = False,
) -> int:
    """Run every phase, print the table (or the JSON object), return the number of failed requests."""
    searches = [str(httpx.URL("/api/search", params={"q": query, "k": k})) for query in QUERIES]
    searched: list[Phase] = []
    health_under_load: list[Phase] = []
    others: list[Phase] = []
    with tempfile.TemporaryDirectory(prefix="picsearch-thumbs-") as thumbs:
        for name, options in SETUPS.items():
            port = free_port()
            server = start_server(index, port, Path(thumbs), threads, options)
            base = f"http://{HOST}:{port}"
            try:
                if not others:  # once, on the default set-up
                    others = _file_phases(base, searches, clients, short_seconds, console)
                search, health = load_with_health(base, name, searches, clients, seconds)
            finally:
                stop_server(server)
            searched.append(search)
            health_under_load.append(health)
    phases = [*searched, *health_under_load, *others]
    baseline = direct(index, list(QUERIES), k, short_seconds, threads)
    if as_json:
        print(json.dumps({phase.name: phase.to_json() for phase in [*phases, baseline]}, indent=1))
    else:
        console.print(table(phases, baseline))
    errors = [error for phase in phases for error in phase.errors]
    for error in errors[:5]:
        console.print(f"[red]error:[/] {error}", highlight=False)
    return len(errors)


def _file_phases(base: str, searches: list[str], clients: int, seconds: float, console: Console) -> list[Phase]:
    """Cached thumbnails of the searches' results, and /healthz alone."""
    ids = sorted({hit["id"] for url in searches for hit in httpx.get(base + url, timeout=60).json()["results"]})
    thumb_paths = [f"/thumbs/{image_id}" for image_id in ids]
    for path in thumb_paths:  # made once here; the phase measures the cache
        httpx.get(base + path, timeout=60).raise_for_status()
    console.print(f"server up at {base}; {len(ids)} distinct result images", style="dim")
    return [load(base, "/thumbs (cached)", thumb_paths, clients, seconds), load(base, "/healthz", ["/healthz"], clients, seconds)]


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--index", type=Path, required=True, help="index folder written by `picsearch index`")
    parser.add_argument("--clients", type=int, default=16, help="concurrent clients")
    parser.add_argument("--seconds", type=float, default=20.0, help="duration of the /api/search phase")
    parser.add_argument("--short-seconds", type=float, default=5.0, help="duration of the other phases and the baseline")
    parser.add_argument("--k", type=int, default=10, help="results per query (the page's default)")
    parser.add_argument("--threads", type=int, default=1, help="compute threads, in the server and the baseline")
    parser.add_argument("--json", action="store_true", help="print one JSON object keyed by phase instead of the table")
    args = parser.parse_args(argv)
    if args.clients < 1 or args.threads < 1 or args.seconds <= 0 or args.short_seconds <= 0:
        parser.error("--clients and --threads must be at least 1, --seconds and --short-seconds positive")
    console = Console(width=120, stderr=args.json)  # the table's width, also when the output is a file
    errors = run(args.index, args.clients, args.seconds, args.short_seconds, args.k, args.threads, console, args.json)
    if not args.json:
        console.print(f"{errors} failed requests" if errors else "no failed requests", style="red" if errors else "green")
    sys.exit(1 if errors else 0)


if __name__ == "__main__":
    main()
