"""Searcher: policy first, retrieval + rerank, child flags enforced, k and min_score; the `search` command.

Fast tests use the synthetic bundle (tests/synthetic_bundle.py: drawn shapes, stub encoders, the pink
pictures child-flagged by the detector); the last test runs the commands on the models trained on the real data.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from typer.testing import CliRunner

from picsearch.index import GalleryIndex, build_index
from picsearch.interfaces.cli import app
from picsearch.policy import DISCLAIMER
from picsearch.search import Searcher
from synthetic_bundle import CHILD_COLOUR, COLOURS, child_paths

QUERIES = ["a red circle", "a big blue square", "green on grey"]
CHILD_QUERIES = ("two little girls playing", "Мальчик на велосипеде", "a toddler's shoes", "kids on a beach")
ANY_QUERIES = [*QUERIES, "pink", "a pink square", "a photo", "anything at all"]


@pytest.fixture(scope="module")
def searcher(synthetic_searcher) -> Searcher:
    return synthetic_searcher


def with_flags(searcher: Searcher, index_dir: Path, flagged: list[int], candidates: int | None = None) -> Searcher:
    """The same index and models, with the child flag set on ``flagged`` rows only."""
    index = GalleryIndex.load(index_dir)
    index.child = np.isin(np.arange(len(index)), flagged)
    return Searcher(index, searcher.bundle, searcher.text_encoder, candidates or searcher.candidates)


def child_ids(searcher: Searcher) -> set[str]:
    """Ids of the pictures the synthetic detector flags (the pink ones)."""
    children = set(child_paths(searcher.index))
    return {image_id for image_id, path in zip(searcher.index.ids, searcher.index.paths) if path in children}


def test_the_only_public_ways_to_rank_are_search_and_search_many() -> None:
    """Ranking helpers are private: a new public method that ranks must be a deliberate change of this set."""
    public = {"open", "search", "search_many", "path_of", "checked_file"}  # the last two look up one checked file
    assert {name for name in dir(Searcher) if not name.startswith("_")} == public


def test_open_applies_the_detector_flags_stored_in_the_index(searcher, synthetic_bundle):
    assert len(child_ids(searcher)) == 2 and len(searcher) == len(searcher.index) - 2
    metrics = json.loads((synthetic_bundle / "metrics.json").read_text())
    assert searcher.candidates == metrics["retrieval_cv"]["candidates"]  # as validated in training


@pytest.mark.parametrize("colour", [c for c in COLOURS if c != CHILD_COLOUR])
def test_the_two_pictures_of_the_colour_asked_for_come_first(searcher, colour):
    hits = searcher.search(f"a {colour} circle", k=3).hits
    assert {hit.path.name for hit in hits[:2]} == {f"{colour}-circle.png", f"{colour}-square.png"}
    assert hits[1].score > hits[2].score


def test_blocked_query_gets_the_disclaimer_and_no_images(searcher):
    for query in CHILD_QUERIES:
        result = searcher.search(query, k=5)
        assert result.blocked and result.disclaimer == DISCLAIMER and result.hits == [] and result.matched
        assert result.to_json() == {"query": query, "blocked": True, "disclaimer": DISCLAIMER, "results": []}
    together = searcher.search_many([*CHILD_QUERIES, QUERIES[0]], k=5)
    assert [r.blocked for r in together] == [True] * len(CHILD_QUERIES) + [False]
    assert all(r.hits == [] and r.disclaimer == DISCLAIMER for r in together[:-1]) and together[-1].hits


def test_flagged_photos_are_never_returned(searcher, synthetic_index):
    hidden = child_ids(searcher)
    unguarded = with_flags(searcher, synthetic_index, [])
    assert hidden <= {hit.id for hit in unguarded.search("pink", k=50).hits}  # they would rank without the flag
    for result in [*searcher.search_many(ANY_QUERIES, k=50), *(searcher.search(q, k=50) for q in ANY_QUERIES)]:
        returned = {hit.id for hit in result.hits}
        assert len(returned) == len(searcher) and not returned & hidden
    for image_id in hidden:
        with pytest.raises(KeyError):
            searcher.path_of(image_id)


def test_child_flags_are_honoured_on_any_rows_and_when_set_late(searcher, synthetic_index):
    flagged = [0, 2, 5]
    guarded = with_flags(searcher, synthetic_index, flagged)
    hidden = {guarded.index.ids[row] for row in flagged}
    assert len(guarded) == len(guarded.index) - 3
    for query in ANY_QUERIES:
        returned = {hit.id for hit in guarded.search(query, k=100).hits}
        assert returned and not returned & hidden
    for image_id in hidden:
        with pytest.raises(KeyError):
            guarded.path_of(image_id)
    # A flag that appears after the store was built is still honoured when hits are assembled.
    late = guarded.search(QUERIES[0], k=1).hits[0].id
    guarded.index.child[guarded.index.rows()[late]] = True
    assert late not in {hit.id for hit in guarded.search(QUERIES[0], k=100).hits}


def test_a_gallery_with_every_photo_hidden_answers_with_no_hits(searcher, synthetic_index):
    hidden_all = with_flags(searcher, synthetic_index, list(range(len(searcher.index))))
    assert len(hidden_all) == 0
    for result in hidden_all.search_many(ANY_QUERIES, k=5):
        assert not result.blocked and result.hits == []


def test_results_are_scored_best_first_and_respect_k(searcher):
    n = len(searcher)
    for k in (1, 3, 50):
        result = searcher.search(QUERIES[0], k=k)
        assert not result.blocked and len(result.hits) == min(k, n)
        scores = [hit.score for hit in result.hits]
        assert scores == sorted(scores, reverse=True) and all(0.0 <= s <= 1.0 for s in scores)
        assert all(hit.path == searcher.path_of(hit.id) and hit.path.is_file() for hit in result.hits)


def test_k_beyond_the_candidates_still_returns_scored_images(searcher, synthetic_index):
    narrow = with_flags(searcher, synthetic_index, [], candidates=2)
    hits = narrow.search(QUERIES[2], k=5).hits
    assert len(hits) == 5 and [h.score for h in hits] == sorted((h.score for h in hits), reverse=True)


def test_min_score_drops_weak_matches(searcher):
    everything = searcher.search(QUERIES[1], k=50).hits
    cut = (everything[1].score + everything[-2].score) / 2
    kept = searcher.search(QUERIES[1], k=50, min_score=cut).hits
    assert kept == [hit for hit in everything if hit.score >= cut] and 0 < len(kept) < len(everything)
    assert searcher.search(QUERIES[1], k=50, min_score=1.0).hits == [hit for hit in everything if hit.score >= 1.0]


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


def test_cli_json_and_file_mode(synthetic_index, tmp_path):
    runner = CliRunner()
    result = runner.invoke(app, ["search", QUERIES[0], "--index", str(synthetic_index), "--k", "2", "--json"])
    assert result.exit_code == 0, result.output
    answer = json.loads(result.stdout)
    assert answer["blocked"] is False and "disclaimer" not in answer
    assert {Path(r["path"]).name for r in answer["results"]} == {"red-circle.png", "red-square.png"}

    queries = tmp_path / "queries.txt"
    queries.write_text(f"{QUERIES[1]}\n\nthe boy's kite\n")
    result = runner.invoke(app, ["search", "--file", str(queries), "--index", str(synthetic_index), "--json"])
    assert result.exit_code == 0, result.output
    lines = [json.loads(line) for line in result.stdout.splitlines()]
    assert [line["blocked"] for line in lines] == [False, True]
    assert lines[1]["disclaimer"] == DISCLAIMER and lines[1]["results"] == []

    table = runner.invoke(app, ["search", QUERIES[2], "--index", str(synthetic_index), "--k", "1"])
    assert table.exit_code == 0 and "score" in table.stdout and "green-" in table.stdout


def test_cli_never_prints_a_flagged_photo(synthetic_index, searcher):
    hidden = [Path(path).name for path in child_paths(searcher.index)]
    args = ["search", "pink", "--index", str(synthetic_index), "--k", "50"]
    answer = json.loads(CliRunner().invoke(app, [*args, "--json"]).stdout)
    shown = {Path(r["path"]).name for r in answer["results"]}
    assert len(shown) == len(searcher) and not shown & set(hidden)
    table = CliRunner().invoke(app, args).stdout
    assert table.count(".png") == len(searcher) and not any(name in table for name in hidden)
    blocked = CliRunner().invoke(app, ["search", CHILD_QUERIES[0], "--index", str(synthetic_index)])
    assert blocked.exit_code == 0 and DISCLAIMER in " ".join(blocked.stdout.split()) and ".png" not in blocked.stdout


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["", "--k", "3"], "query: must not be empty"),
        (["dog", "--k", "0"], "k: must be at least 1"),
        (["dog", "--min-score", "2"], "min_score: must lie in [0, 1]"),
        ([], "give either QUERY or --file"),
    ],
)
def test_cli_rejects_bad_input(synthetic_index, args, message):
    result = CliRunner().invoke(app, ["search", *args, "--index", str(synthetic_index)])
    assert result.exit_code == 2 and message in result.output


def test_open_refuses_an_index_built_with_another_model(synthetic_index, tmp_path):
    manifest = json.loads((synthetic_index / "manifest.json").read_text())
    moved = tmp_path / "index"
    moved.mkdir()
    (moved / manifest["data"]).symlink_to(synthetic_index / manifest["data"])
    (moved / "manifest.json").write_text(json.dumps({**manifest, "model_fingerprint": "something else"}))
    with pytest.raises(ValueError, match="another model"):
        Searcher.open(moved)


@pytest.mark.data
@pytest.mark.slow
def test_search_and_evaluate_commands_on_the_real_models(real_data, real_artifacts, tmp_path):
    # Real photos: the real detector flags most drawn shapes (and most photos), so a drawn gallery may show nothing.
    gallery = real_data / "test_images"
    paths = sorted(gallery.glob("*.jpg"))
    build_index(gallery, real_artifacts, tmp_path / "index", progress=False)  # the training run's cache
    runner, index = CliRunner(), str(tmp_path / "index")
    result = runner.invoke(app, ["search", "a dog runs through the snow", "--index", index, "--k", "3", "--json"])
    assert result.exit_code == 0, result.output
    answer = json.loads(result.stdout)
    scores = [hit["score"] for hit in answer["results"]]
    assert not answer["blocked"] and 0 < len(scores) <= 3 and scores == sorted(scores, reverse=True)
    blocked = json.loads(runner.invoke(app, ["search", CHILD_QUERIES[0], "--index", index, "--json"]).stdout)
    assert blocked["disclaimer"] == DISCLAIMER and blocked["results"] == []
    queries = tmp_path / "queries.csv"
    queries.write_text(f"|query_id|query_text|image\n0|q0|a dog runs|{paths[0].name}\n")
    report = runner.invoke(app, ["evaluate", "--queries", str(queries), "--index", index, "--json"])
    assert report.exit_code == 0 and json.loads(report.stdout)["n_queries"] == 1


def test_a_query_through_the_text_map_scores_the_mean_of_both_boosters(searcher) -> None:
    """The mapped scorer here predicts a constant: a mapped query's scores are (English score + c) / 2, in the
    same order; an English query never reads it."""
    from dataclasses import replace

    from picsearch.models.lgbm import fit_lgbm
    from picsearch.models.multilingual import TextMap

    width = searcher.bundle.scorer.booster_.num_feature()
    features = np.random.default_rng(0).normal(size=(200, width))
    constant = fit_lgbm(features, np.full(200, 0.9), np.ones(200), 5)
    c = float(constant.predict(features[:1])[0])
    text_map = TextMap(1.0, "multi", "multi-v1", searcher.bundle.text_encoder_id)  # only its presence matters here
    mapped_only = replace(searcher.bundle, text_map=text_map, mapped_scorer=None)
    both = replace(mapped_only, mapped_scorer=searcher.bundle.scorer.with_booster(constant))
    alone, averaged = (
        Searcher(searcher.index, bundle, searcher.text_encoder, searcher.candidates) for bundle in (mapped_only, both)
    )
    mixed = "a blue circle синий"  # Cyrillic: it takes the map
    before, after = alone.search(mixed, k=4).hits, averaged.search(mixed, k=4).hits
    assert [h.id for h in after] == [h.id for h in before]
    np.testing.assert_allclose([h.score for h in after], [(h.score + c) / 2 for h in before], atol=1e-9)
    english = [(h.id, h.score) for h in averaged.search("a blue circle", k=4).hits]
    assert english == [(h.id, h.score) for h in alone.search("a blue circle", k=4).hits]


def test_an_answer_is_weak_only_when_its_best_hit_scores_under_minor_aspects(tmp_path):
    from picsearch.labels import MINOR_ASPECTS
    from picsearch.search import Hit, SearchResult

    def answer(*scores: float) -> SearchResult:
        return SearchResult("q", False, hits=[Hit(str(i), tmp_path / f"{i}.jpg", s) for i, s in enumerate(scores)])

    assert answer(MINOR_ASPECTS - 1e-9, 0.1).weak and answer(0.02).weak
    assert not answer(MINOR_ASPECTS, 0.1).weak and not answer(0.9, 0.01).weak
    assert not answer().weak  # nothing passed min_score: the empty answer says that instead
    assert answer(0.2).to_json()["weak"] is True and answer(0.5).to_json()["weak"] is False
    blocked = SearchResult("q", True, DISCLAIMER)
    assert not blocked.weak and "weak" not in blocked.to_json()
