"""Compute threads: set once by an entry point (a CLI command, the server, a benchmark), read by the libraries.

Library code never changes thread counts itself; it asks :func:`compute_threads` when it builds a session
(ONNX Runtime) and otherwise relies on what the entry point gave torch and the BLAS / OpenMP pools."""

from __future__ import annotations

import os
import sys
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from functools import cache
from pathlib import Path
from typing import Iterator

_threads: int | None = None
THREAD_VARIABLES = ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS")


def available_cpus() -> int:
    """CPUs this process may run on (the container may hide some that ``os.cpu_count`` reports)."""
    return len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1


@cache
def cpu_flags(cpuinfo: Path = Path("/proc/cpuinfo")) -> frozenset[str]:
    """The first CPU's feature flags in ``cpuinfo`` (empty where it cannot be read, e.g. off Linux), which decide
    the fastest exact kernels for a model. Read once a process, up to the first CPU's flags: every search start
    asks, and on a many-core machine the whole file is long and slow to generate."""
    try:
        with cpuinfo.open() as lines:
            return frozenset(next((line.partition(":")[2].split() for line in lines if line.startswith("flags")), []))
    except OSError:
        return frozenset()


def set_threads(threads: int | None = None) -> int:
    """Give torch, numpy's BLAS / OpenMP and later ONNX Runtime sessions ``threads`` threads (default: one per
    available CPU); returns the number. Call it from an entry point, before any model runs.

    Libraries not imported yet read the environment variables when they load (so a command that never runs a
    model does not pay for importing torch); those already loaded are told directly."""
    global _threads
    _threads = threads or available_cpus()
    for name in THREAD_VARIABLES:
        os.environ[name] = str(_threads)
    if "torch" in sys.modules:
        torch = sys.modules["torch"]
        if torch.get_num_threads() != _threads:
            torch.set_num_threads(_threads)
    from threadpoolctl import threadpool_limits

    threadpool_limits(_threads)
    return _threads


def compute_threads() -> int:
    """The intra-op threads a model session should use: what the entry point set, else one per available CPU."""
    return _threads or available_cpus()


def model_workers() -> int:
    """How many model calls (fits, forward passes) to run at once: the available CPUs shared out at
    :func:`compute_threads` threads each, so one thread per call gives one call per CPU."""
    return max(1, available_cpus() // compute_threads())


@contextmanager
def worker_pool(workers: int | None = None, name: str = "worker") -> Iterator[ThreadPoolExecutor]:
    """A thread pool of ``workers`` (default :func:`model_workers`) for model calls; on an error (or Ctrl-C) the
    calls not started yet are dropped, not waited for."""
    pool = ThreadPoolExecutor(workers or model_workers(), thread_name_prefix=name)
    try:
        yield pool
    except BaseException:
        pool.shutdown(wait=False, cancel_futures=True)
        raise
    pool.shutdown()
