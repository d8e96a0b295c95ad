"""Evaluation on labelled queries: raw model vs with policy, blocked queries and hidden targets; `evaluate`."""

from __future__ import annotations

import json

import pandas as pd
import pytest
from typer.testing import CliRunner

from picsearch.interfaces.cli import app
from picsearch.search.evaluate import evaluate


@pytest.fixture(scope="module")
def searcher(synthetic_searcher):
    return synthetic_searcher


EVALUATION = pd.DataFrame(
    {
        "query_id": ["q0", "q1", "q2", "q3", "q4"],
        "query_text": ["a red circle", "a blue square", "a girl with a red ball", "a pink circle", "a tree"],
        "image": ["red-circle.png", "sub/blue-square.png", "red-square.png", "pink-circle.png", "absent.png"],
    }
)
"""q0, q1 find their target among the first two (each colour's two pictures come first); q2 is blocked (its
target, red too, still ranks high for the raw model); q3's target is flagged; q4's is not indexed."""


def test_evaluate_counts_blocked_queries_and_hidden_targets(searcher):
    report = evaluate(searcher, EVALUATION)
    assert (report["n_queries"], report["blocked"], report["hidden_targets"], report["unindexed_targets"]) == (5, 1, 1, 1)
    assert report["gallery"] == 14 and report["recall@5"] >= 3 / 5 - 1e-4  # policy off: q2 counts
    with_policy, answerable = report["with_policy"], report["answerable"]  # q4 is answerable but never found
    assert with_policy["n_queries"] == 5 and with_policy["recall@5"] == pytest.approx(2 / 5, abs=1e-4)
    assert answerable["n_queries"] == 3 and answerable["recall@5"] == pytest.approx(2 / 3, abs=1e-4)
    assert answerable["median_rank"] <= 2
    answerable_texts = ["a red circle", "a blue square", "a tree"]
    weak = [result.weak for result in searcher.search_many(answerable_texts, k=1)]
    assert report["weak"]["share"] == pytest.approx(sum(weak) / 3, abs=1e-4)  # as search itself says


def test_evaluate_command_prints_the_same_report(synthetic_index, searcher, tmp_path):
    queries = tmp_path / "queries.csv"
    lines = ["|query_id|query_text|image", *(f"{n}|{q}|{t}|{i}" for n, (q, t, i) in enumerate(EVALUATION.values))]
    queries.write_text("\n".join(lines) + "\n")
    result = CliRunner().invoke(app, ["evaluate", "--queries", str(queries), "--index", str(synthetic_index), "--json"])
    assert result.exit_code == 0, result.output
    assert json.loads(result.stdout) == json.loads(json.dumps(evaluate(searcher, EVALUATION)))
