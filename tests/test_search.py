"""Searcher: policy first, retrieval + rerank, child flags enforced, k and min_score, CLI and evaluation."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from typer.testing import CliRunner

from picsearch.index import GalleryIndex, build_index
from picsearch.interfaces.cli import app
from picsearch.policy import DISCLAIMER
from picsearch.search import Searcher
from picsearch.search.evaluate import evaluate
from test_index import write_gallery

pytestmark = [pytest.mark.data, pytest.mark.slow]  # uses the models the session trains on the real data

QUERIES = ["a red ball on a green field", "blue sky over the sea", "a dark room with a lamp"]


@pytest.fixture(scope="module")
def index_dir(tmp_path_factory, real_artifacts):
    folder = tmp_path_factory.mktemp("search")
    write_gallery(folder / "gallery", 8)
    build_index(folder / "gallery", real_artifacts, folder / "index", folder / "cache", progress=False)
    return folder / "index"


@pytest.fixture(scope="module")
def opened(index_dir) -> Searcher:
    return Searcher.open(index_dir)


def flagged_searcher(searcher: Searcher, index_dir, flagged: list[int]) -> Searcher:
    """The same index and models, with the child detector's flag set on ``flagged`` rows only."""
    index = GalleryIndex.load(index_dir)
    index.child = np.isin(np.arange(len(index)), flagged)
    return Searcher(index, searcher.bundle, searcher.text_encoder, searcher.candidates)


@pytest.fixture(scope="module")
def visible_dir(index_dir, tmp_path_factory):
    """The same index with no image flagged (the detector may flag drawn shapes; flags are tested alone)."""
    index = GalleryIndex.load(index_dir, mmap=False)
    index.child[:] = False
    folder = tmp_path_factory.mktemp("visible") / "index"
    index.save(folder)
    return folder


@pytest.fixture(scope="module")
def searcher(visible_dir) -> Searcher:
    return Searcher.open(visible_dir)


def test_open_applies_the_detector_flags_stored_in_the_index(opened):
    flagged = {image_id for image_id, child in zip(opened.index.ids, opened.index.child) if child}
    assert len(opened) == len(opened.index) - len(flagged)
    assert not {hit.id for hit in opened.search(QUERIES[0], k=100).hits} & flagged
    metrics = json.loads((Path(opened.index.meta["model"]) / "metrics.json").read_text())
    assert opened.candidates == metrics["retrieval_cv"]["candidates"]  # as validated in training


def test_blocked_query_gets_the_disclaimer_and_no_images(searcher):
    for query in ("two little girls playing", "Мальчик на велосипеде", "a toddler's shoes"):
        result = searcher.search(query, k=5)
        assert result.blocked and result.disclaimer == DISCLAIMER and result.hits == [] and result.matched
        assert result.to_json() == {"query": query, "blocked": True, "disclaimer": DISCLAIMER, "results": []}


def test_results_are_scored_best_first_and_respect_k(searcher):
    n = len(searcher)
    for k in (1, 3, 50):
        result = searcher.search(QUERIES[0], k=k)
        assert not result.blocked and len(result.hits) == min(k, n)
        scores = [hit.score for hit in result.hits]
        assert scores == sorted(scores, reverse=True) and all(0.0 <= s <= 1.0 for s in scores)
        assert all(hit.path == searcher.path_of(hit.id) and hit.path.is_file() for hit in result.hits)


def test_k_beyond_the_candidates_still_returns_scored_images(searcher):
    narrow = Searcher(searcher.index, searcher.bundle, searcher.text_encoder, candidates=2)
    hits = narrow.search(QUERIES[2], k=5).hits
    assert len(hits) == 5 and [h.score for h in hits] == sorted((h.score for h in hits), reverse=True)


def test_min_score_drops_weak_matches(searcher):
    everything = searcher.search(QUERIES[1], k=50).hits
    cut = (everything[1].score + everything[-2].score) / 2
    kept = searcher.search(QUERIES[1], k=50, min_score=cut).hits
    assert kept == [hit for hit in everything if hit.score >= cut] and 0 < len(kept) < len(everything)
    assert searcher.search(QUERIES[1], k=50, min_score=1.0).hits == [hit for hit in everything if hit.score >= 1.0]


def test_child_flagged_images_are_never_returned(searcher, index_dir):
    flagged = [0, 2, 5]
    guarded = flagged_searcher(searcher, index_dir, flagged)
    hidden = {guarded.index.ids[row] for row in flagged}
    assert len(guarded) == len(guarded.index) - 3
    for query in QUERIES + ["a photo", "anything at all"]:
        returned = {hit.id for hit in guarded.search(query, k=100).hits}
        assert returned and not returned & hidden
    for image_id in hidden:
        with pytest.raises(KeyError):
            guarded.path_of(image_id)
    # A flag that appears after the store was built is still honoured when hits are assembled.
    late = guarded.search(QUERIES[0], k=1).hits[0].id
    guarded.index.child[guarded.index.rows()[late]] = True
    assert late not in {hit.id for hit in guarded.search(QUERIES[0], k=100).hits}


def test_bad_requests_are_rejected_with_the_field_named(searcher):
    with pytest.raises(ValueError, match="query"):
        searcher.search("   ")
    with pytest.raises(ValueError, match="k: must be at least 1"):
        searcher.search("dog", k=0)
    with pytest.raises(ValueError, match="min_score"):
        searcher.search("dog", min_score=1.5)
    with pytest.raises(KeyError):
        searcher.path_of("no-such-id")


def test_search_many_equals_one_by_one(searcher):
    together = searcher.search_many(QUERIES + ["kids on a beach"], k=3)
    alone = [searcher.search(query, k=3) for query in QUERIES + ["kids on a beach"]]
    assert [r.blocked for r in together] == [False, False, False, True]
    for a, b in zip(together, alone):
        assert [h.id for h in a.hits] == [h.id for h in b.hits]
        np.testing.assert_allclose([h.score for h in a.hits], [h.score for h in b.hits], atol=1e-5)


def test_cli_json_and_file_mode(visible_dir, tmp_path):
    runner = CliRunner()
    result = runner.invoke(app, ["search", QUERIES[0], "--index", str(visible_dir), "--k", "2", "--json"])
    assert result.exit_code == 0, result.output
    answer = json.loads(result.stdout)
    assert answer["blocked"] is False and len(answer["results"]) == 2 and "disclaimer" not in answer
    assert set(answer["results"][0]) >= {"path", "score"}

    queries = tmp_path / "queries.txt"
    queries.write_text(f"{QUERIES[1]}\n\nthe boy's kite\n")
    result = runner.invoke(app, ["search", "--file", str(queries), "--index", str(visible_dir), "--json"])
    assert result.exit_code == 0, result.output
    lines = [json.loads(line) for line in result.stdout.splitlines()]
    assert [line["blocked"] for line in lines] == [False, True]
    assert lines[1]["disclaimer"] == DISCLAIMER and lines[1]["results"] == []

    table = runner.invoke(app, ["search", QUERIES[2], "--index", str(visible_dir), "--k", "1"])
    assert table.exit_code == 0 and "score" in table.stdout


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["", "--k", "3"], "query: must not be empty"),
        (["dog", "--k", "0"], "k: must be at least 1"),
        (["dog", "--min-score", "2"], "min_score: must lie in [0, 1]"),
        ([], "give either QUERY or --file"),
    ],
)
def test_cli_rejects_bad_input(visible_dir, args, message):
    result = CliRunner().invoke(app, ["search", *args, "--index", str(visible_dir)])
    assert result.exit_code == 2 and message in result.output


def test_open_refuses_an_index_built_with_another_model(index_dir, tmp_path):
    manifest = json.loads((index_dir / "manifest.json").read_text())
    moved = tmp_path / "index"
    moved.mkdir()
    (moved / manifest["data"]).symlink_to(index_dir / manifest["data"])
    (moved / "manifest.json").write_text(json.dumps({**manifest, "model_fingerprint": "something else"}))
    with pytest.raises(ValueError, match="another model"):
        Searcher.open(moved)


def test_evaluate_counts_blocked_queries_and_hidden_targets(searcher, index_dir):
    guarded = flagged_searcher(searcher, index_dir, [1])
    paths = guarded.index.paths
    queries = pd.DataFrame(
        {
            "query_id": ["q0", "q1", "q2", "q3"],
            "query_text": [QUERIES[0], QUERIES[1], "a girl with a red ball", "a lamp in the corner"],
            "image": [paths[0], paths[1], paths[2], paths[3].rsplit("/", 1)[-1]],
        }
    )
    report = evaluate(guarded, queries)
    assert report["n_queries"] == 4 and report["blocked"] == 1 and report["hidden_targets"] == 1
    assert report["with_policy"]["n_queries"] == 4 and report["answerable"]["n_queries"] == 2
    assert report["unindexed_targets"] == 0
    assert report["with_policy"]["recall@10"] <= 0.5  # blocked and hidden queries count as misses
    for key in ("recall@1", "recall@5", "recall@10", "mrr", "median_rank"):
        assert key in report and key in report["with_policy"]
    assert report["recall@10"] == 1.0  # a gallery of 8: the raw ranking always holds the target
