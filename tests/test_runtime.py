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
