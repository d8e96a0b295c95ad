"""The benchmarks' shared setup: without a dataset folder a benchmark exits 2 with one line, no traceback."""

from __future__ import annotations

import importlib
import os
import subprocess
import sys
from pathlib import Path

import pytest

from picsearch import config
from picsearch.bench.common import data_dir

SRC = Path(__file__).resolve().parents[1] / "src"


@pytest.fixture()
def no_data(tmp_path, monkeypatch) -> Path:
    """Neither $PICSEARCH_DATA nor the default folder: the default points at a folder that is not there."""
    monkeypatch.delenv(config.DATA_ENV, raising=False)
    monkeypatch.setattr(config, "DEFAULT_DATA", tmp_path / "absent")
    return tmp_path / "absent"


@pytest.mark.parametrize("module", ["embed", "retrieval", "multilingual"])
def test_a_benchmark_without_data_exits_2_with_one_line_naming_the_folder(module, no_data, capsys):
    with pytest.raises(SystemExit) as exit:
        importlib.import_module(f"picsearch.bench.{module}").main([])
    assert exit.value.code == 2
    captured = capsys.readouterr()
    lines = captured.err.splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: dataset folder not found: ")
    assert str(no_data) in lines[0] and "--data" in lines[0] and "$PICSEARCH_DATA" in lines[0]
    assert captured.out == ""


def test_the_folder_given_is_the_one_named(tmp_path, capsys):
    with pytest.raises(SystemExit):
        data_dir(tmp_path / "nowhere")
    assert f"{tmp_path / 'nowhere'} (from --data)" in capsys.readouterr().err
    assert data_dir(tmp_path) == tmp_path


def test_bench_search_as_a_command_prints_no_traceback(tmp_path):
    env = {**os.environ, "PYTHONPATH": str(SRC)}
    env.pop(config.DATA_ENV, None)
    run = subprocess.run(
        [sys.executable, "-m", "picsearch.bench.search", "--data", str(tmp_path / "absent")],
        capture_output=True, text=True, env=env, timeout=120,
    )
    assert run.returncode == 2 and run.stdout == ""
    assert run.stderr.splitlines() == [
        f"error: dataset folder not found: {tmp_path / 'absent'} (from --data); give --data DIR, or set "
        f"${config.DATA_ENV}, or place the data at {config.DEFAULT_DATA}"
    ]
