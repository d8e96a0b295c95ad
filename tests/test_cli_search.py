"""`picsearch search` on Cyrillic: arguments, UTF-8 files and JSON keep the text as written (fast, stub searcher)."""

from __future__ import annotations

import json
from pathlib import Path
from types import SimpleNamespace

import pytest
from typer.testing import CliRunner

from picsearch.interfaces.cli import app
from picsearch.policy import DISCLAIMER
from picsearch.search import Searcher
from web_gallery import WordSearcher, write_gallery

QUERIES = ["собака бежит по снегу", "Ёжик в тумане", "собака frisbee"]


class StubSearcher(WordSearcher):
    def search_many(self, queries, k=5, min_score=0.0):
        return [self.search(query, k, min_score) for query in queries]


@pytest.fixture()
def stub(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> StubSearcher:
    searcher = StubSearcher(write_gallery(tmp_path / "gallery"))
    monkeypatch.setattr(Searcher, "open", classmethod(lambda cls, *args, **kwargs: searcher))
    return searcher


def test_cyrillic_argument_round_trips_in_json(stub: StubSearcher) -> None:
    result = CliRunner().invoke(app, ["search", QUERIES[0], "--k", "2", "--json"])
    assert result.exit_code == 0, result.output
    assert f'"query": "{QUERIES[0]}"' in result.stdout  # written as is, not as \\u escapes
    assert json.loads(result.stdout)["query"] == QUERIES[0] and stub.calls == [(QUERIES[0], 2, 0.0)]


@pytest.mark.parametrize("bom", [b"", b"\xef\xbb\xbf"])
def test_utf8_query_file_round_trips_in_json_lines(stub: StubSearcher, tmp_path: Path, bom: bytes) -> None:
    queries = tmp_path / "запросы.txt"
    queries.write_bytes(bom + "\n".join([*QUERIES, "", "две девочки у моря"]).encode("utf-8"))
    result = CliRunner().invoke(app, ["search", "--file", str(queries), "--json"])
    assert result.exit_code == 0, result.output
    lines = [json.loads(line) for line in result.stdout.splitlines()]
    assert [line["query"] for line in lines] == [*QUERIES, "две девочки у моря"]
    assert [line["blocked"] for line in lines] == [False, False, False, True]
    assert lines[-1]["disclaimer"] == DISCLAIMER and lines[-1]["results"] == []
    assert "\\u04" not in result.stdout


def test_a_weak_answer_is_marked_in_the_table_and_the_json(stub: StubSearcher) -> None:
    weak = CliRunner().invoke(app, ["search", "sea at night with stars"])  # best: one word in five
    assert weak.exit_code == 0, weak.output
    assert "no good match: every score is under 0.33" in " ".join(weak.stdout.split())
    assert json.loads(CliRunner().invoke(app, ["search", "sea at night with stars", "--json"]).stdout)["weak"] is True
    good = CliRunner().invoke(app, ["search", "blue sea"])
    assert "no good match" not in good.stdout and "0.500" in good.stdout


def test_query_file_that_is_not_utf8_is_named_with_its_line(stub: StubSearcher, tmp_path: Path) -> None:
    queries = tmp_path / "cp1251.txt"
    queries.write_bytes("a dog\nсобака\n".encode("cp1251"))
    result = CliRunner().invoke(app, ["search", "--file", str(queries)])
    assert result.exit_code == 2
    assert f"{queries}: line 2: not UTF-8 text" in " ".join(result.output.split())
    assert "Traceback" not in result.output and stub.calls == []


def test_the_demo_trains_one_thread_a_fit_and_one_fit_a_cpu(tmp_path, monkeypatch):
    from picsearch import runtime
    from picsearch.reports import demo

    seen = {}

    def run_demo(*args, **kwargs):
        with runtime.worker_pool() as pool:  # the pool `train_models` fits on, as TrainConfig() leaves it
            seen.update(threads=runtime.compute_threads(), workers=pool._max_workers)
        return SimpleNamespace(results=[], html=tmp_path / "index.html", grid=tmp_path / "grid.png")

    monkeypatch.setattr(runtime, "_threads", None)
    monkeypatch.setattr(demo, "run_demo", run_demo)
    result = CliRunner().invoke(app, ["demo", "--data", str(tmp_path), "--artifacts", str(tmp_path / "art")])
    assert result.exit_code == 0, result.output
    assert seen == {"threads": 1, "workers": runtime.available_cpus()}


@pytest.mark.parametrize("command, threads, bf16_threads", [
    ("train", 1, 1), ("demo", 1, 1), ("index", 1, 1), ("embed", None, 1), ("search", None, None),
])
def test_commands_that_fit_models_on_workers_give_each_one_thread(command, threads, bf16_threads, monkeypatch):
    from picsearch import runtime
    from picsearch.encoders import sentence

    for flags, expected in (("avx2 avx512_vnni", threads), ("avx2 amx_bf16", bf16_threads)):
        asked = []
        monkeypatch.setattr(runtime, "set_threads", asked.append)
        monkeypatch.setattr(sentence, "cpu_flags", lambda: frozenset(flags.split()))
        result = CliRunner().invoke(app, [command, "--help"])
        assert result.exit_code == 0, result.output
        assert asked == [expected], flags
