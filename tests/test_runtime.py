"""Compute threads are set once by an entry point and read by model sessions."""

from __future__ import annotations

import subprocess
import sys

from picsearch import runtime


def test_set_threads_reaches_torch_and_later_sessions(monkeypatch) -> None:
    import torch

    before = torch.get_num_threads()
    monkeypatch.setattr(runtime, "_threads", None)
    for name in runtime.THREAD_VARIABLES:
        monkeypatch.delenv(name, raising=False)  # restored after the test
    assert runtime.compute_threads() == runtime.available_cpus()
    try:
        assert runtime.set_threads(1) == 1
        assert torch.get_num_threads() == 1 and runtime.compute_threads() == 1
    finally:
        torch.set_num_threads(before)


def test_a_library_imported_after_the_entry_point_reads_the_setting() -> None:
    code = "from picsearch import runtime; runtime.set_threads(1); import torch; print(torch.get_num_threads())"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "1"


def test_model_workers_share_the_cpus_out_at_the_threads_each(monkeypatch) -> None:
    monkeypatch.setattr(runtime, "available_cpus", lambda: 4)
    for threads, workers in [(1, 4), (2, 2), (3, 1), (8, 1)]:
        monkeypatch.setattr(runtime, "_threads", threads)
        assert runtime.model_workers() == workers


def test_worker_pool_drops_the_calls_not_started_on_an_error() -> None:
    import threading

    release, ran = threading.Event(), []
    try:
        with runtime.worker_pool(1) as pool:
            pool.submit(release.wait, 5)
            for i in range(5):
                pool.submit(ran.append, i)
            raise KeyboardInterrupt
    except KeyboardInterrupt:
        pass
    release.set()
    assert ran == []


def test_cpu_flags_are_the_first_cpus_and_empty_where_unreadable(tmp_path) -> None:
    cpuinfo = tmp_path / "cpuinfo"
    cpuinfo.write_text("processor\t: 0\nflags\t\t: fpu avx2 amx_bf16\n\nprocessor\t: 1\nflags\t\t: fpu sse2\n")
    assert runtime.cpu_flags(cpuinfo) == {"fpu", "avx2", "amx_bf16"}
    assert runtime.cpu_flags(tmp_path / "missing") == frozenset()
    assert runtime.cpu_flags(tmp_path / "missing") is runtime.cpu_flags(tmp_path / "missing")  # read once


def test_importing_picsearch_asks_openblas_to_stop_spinning_unless_told_otherwise() -> None:
    import os

    code = "import sys, picsearch, os; print('numpy' in sys.modules, os.environ['OPENBLAS_THREAD_TIMEOUT'])"
    env = {k: v for k, v in os.environ.items() if k != "OPENBLAS_THREAD_TIMEOUT"}
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True, env=env).stdout
    assert out.split() == ["False", "4"]  # set before numpy (and so OpenBLAS) loads
    env["OPENBLAS_THREAD_TIMEOUT"] = "20"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True, env=env).stdout
    assert out.split() == ["False", "20"]
