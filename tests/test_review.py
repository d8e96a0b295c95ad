"""Human review: the decision log (hash-bound, append-only, torn lines), the queue, and `picsearch review`."""

from __future__ import annotations

import getpass
import json
import multiprocessing
from pathlib import Path

import numpy as np
import pytest
from typer.testing import CliRunner

from picsearch.features.cache import file_digest
from picsearch.index import GalleryIndex, image_id
from picsearch.index.desk import ReviewDesk, duplicate_groups
from picsearch.index.review import LOG_NAME, Moderation, ReviewLog, TornLineWarning, make_review
from picsearch.interfaces.cli import app
from review_gallery import build_review_index, copy_index, write_photo

A, B, C, D, E = (image_id(name) for name in ("a.png", "b.png", "c.png", "d.png", "e.png"))


@pytest.fixture()
def index_dir(tmp_path: Path) -> Path:
    return build_review_index(tmp_path)


@pytest.fixture()
def desk(index_dir: Path) -> ReviewDesk:
    return ReviewDesk.open(index_dir)


def reindex_changed(index_dir: Path, name: str) -> None:
    """What `picsearch index` does for a changed file: same id, new hash (the detector's flag stays)."""
    index = GalleryIndex.load(index_dir, mmap=False)
    row = index.paths.index(name)
    index.hashes[row] = file_digest(index.absolute_path(row))
    index.save(index_dir)


def queue_ids(desk: ReviewDesk, cosine: float = 0.95) -> list[str]:
    return [item.id for item in desk.queue(cosine).items]


def test_queue_is_most_likely_harmless_first_with_duplicates_grouped(desk):
    queue = desk.queue(0.95)
    assert [item.id for item in queue.items] == [B, A, C, D]  # a.png (p=0.9) joins its near-duplicate b.png
    assert [item.group for item in queue.items] == [1, 1, 2, 3]
    assert (queue.remaining, queue.groups, queue.reviewed) == (4, 3, 0)
    assert queue_ids(desk, 1.01) == [B, C, D, A]  # no grouping: by probability alone


def test_duplicate_groups_chain_similar_rows():
    x = np.array([[1, 0], [0.99, 0.14], [0.96, 0.28], [0, 1]], dtype=np.float32)
    groups = duplicate_groups(x, 0.98)
    assert groups[0] == groups[1] == groups[2] != groups[3]  # 0~1 and 1~2 though 0 and 2 are further apart


def test_clear_and_flag_are_logged_and_leave_the_queue(desk, index_dir):
    desk.decide(B, "clear", "a grown woman", "ann")
    desk.decide(E, "flag", "a toddler behind the car", "bob")
    assert queue_ids(desk) == [C, D, A]  # without b.png, a.png waits for its own turn
    flags = {record["id"]: record for record in desk.flags()}
    assert flags[B]["flagged"] is False and flags[B]["review"]["decision"] == "clear"
    assert flags[E]["flagged"] is True and flags[E]["review"]["who"] == "bob"
    lines = (index_dir / LOG_NAME).read_text().splitlines()
    records = [json.loads(line) for line in lines]
    assert [(r["id"], r["decision"], r["who"], r["why"]) for r in records] == [
        (B, "clear", "ann", "a grown woman"), (E, "flag", "bob", "a toddler behind the car")]
    assert all(r["hash"] and r["when"].endswith("+00:00") for r in records)


def test_latest_decision_for_a_version_wins(desk):
    desk.decide(B, "clear", "looked harmless", "ann")
    desk.decide(B, "flag", "second look: a child in the back", "bob")
    assert {r["id"]: r["flagged"] for r in desk.flags()}[B] is True


def test_a_changed_file_is_flagged_again_until_reviewed(desk, index_dir):
    desk.decide(B, "clear", "an adult", "ann")
    path = desk.path_of(B)
    write_photo(path, seed=99)  # new bytes under the same name
    with pytest.raises(ValueError, match="changed or gone since it was indexed"):
        desk.decide(B, "clear", "an adult", "ann")  # the operator would clear bytes the detector never saw
    reindex_changed(index_dir, "b.png")
    desk = ReviewDesk.open(index_dir)
    record = {r["id"]: r for r in desk.flags()}[B]
    assert record["flagged"] is True and record["review"] is None  # the old clearance is void
    assert B in queue_ids(desk)
    desk.decide(B, "clear", "the new photo: an adult too", "ann")
    assert {r["id"]: r["flagged"] for r in desk.flags()}[B] is False


def test_decisions_are_checked(desk):
    with pytest.raises(KeyError, match="unknown image id"):
        desk.decide("nope", "clear", "why", "ann")
    with pytest.raises(ValueError, match="reason: must not be empty"):
        desk.decide(B, "clear", "  ", "ann")
    with pytest.raises(ValueError, match="decision: must be one of"):
        desk.decide(B, "delete", "why", "ann")


def test_moderation_rereads_the_log_only_when_it_changed(desk, index_dir):
    moderation = Moderation(desk.index, ReviewLog.of_index(index_dir))
    assert moderation.refresh() is True and moderation.refresh() is False
    before = moderation.decisions
    desk.decide(B, "clear", "an adult", "ann")
    assert moderation.refresh() is True and moderation.decisions is not before
    assert not moderation.hidden()[desk.index.rows()[B]] and desk.index.child[desk.index.rows()[B]]


def test_a_torn_last_line_is_skipped_with_a_warning_and_the_next_write_starts_fresh(tmp_path):
    log = ReviewLog(tmp_path / LOG_NAME)
    log.append(make_review(B, "h1", "clear", "ann", "adult"))
    with open(log.path, "ab") as handle:
        handle.write(b'{"id": "' + C.encode() + b'", "ha')  # a write cut short by a crash
    with pytest.warns(TornLineWarning, match=rf"{LOG_NAME}: line 2: incomplete record"):
        assert [r.id for r in log.read()] == [B]
    log.append(make_review(D, "h2", "flag", "bob", "child"))
    with pytest.warns(TornLineWarning, match="line 2"):
        assert [r.id for r in log.read()] == [B, D]


def test_a_record_with_a_bad_field_is_an_error_naming_file_line_and_field(tmp_path):
    log = ReviewLog(tmp_path / LOG_NAME)
    log.append(make_review(B, "h1", "clear", "ann", "adult"))
    with open(log.path, "a") as handle:
        handle.write(json.dumps({"id": C, "hash": "h", "decision": "maybe", "who": "x", "when": "t", "why": "y"}) + "\n")
    with pytest.raises(ValueError, match=rf"{LOG_NAME}: line 2: field decision"):
        log.read()


def _append_many(path: str, worker: int, n: int) -> None:
    log = ReviewLog(Path(path))
    for i in range(n):
        log.append(make_review(f"id{worker}-{i}", "h" * 64, "clear", f"worker {worker}", "x" * (50 + 37 * i % 400)))


def test_concurrent_reviewers_never_corrupt_the_log(tmp_path):
    path = tmp_path / LOG_NAME
    context = multiprocessing.get_context("fork")
    workers = [context.Process(target=_append_many, args=(str(path), w, 40)) for w in range(4)]
    for worker in workers:
        worker.start()
    for worker in workers:
        worker.join(timeout=60)
        assert worker.exitcode == 0
    reviews = ReviewLog(path).read()  # a torn or interleaved line would warn (errors in this suite) or fail
    assert sorted(r.id for r in reviews) == sorted(f"id{w}-{i}" for w in range(4) for i in range(40))


def run(*args: str):
    return CliRunner().invoke(app, [str(a) for a in args])


def test_cli_lists_the_queue_and_records_decisions(index_dir):
    listed = run("review", "--index", index_dir, "--json")
    assert listed.exit_code == 0, listed.output
    queue = json.loads(listed.output)
    assert [item["id"] for item in queue["items"]] == [B, A, C, D] and queue["remaining"] == 4
    cleared = run("review", "--index", index_dir, "--clear", B, "--reason", "an adult", "--json")
    assert cleared.exit_code == 0, cleared.output
    record = json.loads(cleared.output)
    assert record["decision"] == "clear" and record["who"] == getpass.getuser()
    run("review", "--index", index_dir, "--flag", E, "--reason", "a child", "--by", "carol")
    text = run("review", "--index", index_dir)
    assert text.exit_code == 0 and "3 flagged photos left to review in 3 groups; 2 reviewed" in text.output


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--clear", B], "--reason TEXT is required"),
        (["--clear", B, "--flag", C, "--reason", "x"], "not both"),
        (["--clear", "nope", "--reason", "x"], "unknown image id"),
    ],
)
def test_cli_rejects_bad_decisions_in_one_line(index_dir, args, message):
    result = run("review", "--index", index_dir, *args)
    assert result.exit_code == 2 and message in result.output and "Traceback" not in result.output
    assert not (index_dir / LOG_NAME).exists()


# Search applies decisions at once (a real Searcher over the synthetic bundle's index).


@pytest.fixture()
def synthetic_copy(synthetic_index: Path, tmp_path: Path) -> Path:
    """A private copy of the synthetic gallery and index (decisions and re-indexing change them)."""
    return copy_index(synthetic_index, tmp_path)


def ids_found(searcher, query: str) -> set[str]:
    return {hit.id for hit in searcher.search(query, k=50).hits}


def test_search_honours_a_clearance_and_a_new_flag_without_reindexing(synthetic_copy):
    from picsearch.search import Searcher

    searcher = Searcher.open(synthetic_copy)
    pink, red = image_id("pink-circle.png"), image_id("red-circle.png")
    assert pink not in ids_found(searcher, "a pink circle") and red in ids_found(searcher, "a red circle")
    n = len(searcher)
    desk = ReviewDesk.open(synthetic_copy)
    desk.decide(pink, "clear", "a pink balloon, no child", "ann")
    desk.decide(red, "flag", "a child in the corner", "bob")
    assert pink in ids_found(searcher, "a pink circle")  # the same searcher, the next query
    assert red not in ids_found(searcher, "a red circle") and len(searcher) == n
    assert searcher.path_of(pink).name == "pink-circle.png"
    with pytest.raises(KeyError):
        searcher.path_of(red)


def test_a_clearance_never_applies_to_changed_content(synthetic_copy):
    from picsearch.index import build_index
    from picsearch.search import Searcher
    from synthetic_bundle import draw

    pink = image_id("pink-circle.png")
    ReviewDesk.open(synthetic_copy).decide(pink, "clear", "a pink balloon, no child", "ann")
    assert pink in ids_found(Searcher.open(synthetic_copy), "a pink circle")
    model = Path(GalleryIndex.load(synthetic_copy).meta["model"])
    gallery = synthetic_copy.parent / "gallery"
    draw("pink", "circle", 2).save(gallery / "pink-circle.png")  # other bytes, still pink: the detector flags it
    build_index(gallery, model, synthetic_copy, synthetic_copy.parent / "cache", progress=False)
    searcher = Searcher.open(synthetic_copy)
    assert pink not in ids_found(searcher, "a pink circle")  # flagged again until someone reviews it
    assert [item.id for item in ReviewDesk.open(synthetic_copy).queue().items].count(pink) == 1


def test_progress_counts_what_is_left_without_building_the_queue(desk):
    assert desk.progress() == (4, 0)
    desk.decide(B, "clear", "an adult", "ann")
    desk.decide(E, "flag", "a child", "ann")  # not detector-flagged: reviewed, but never in the queue
    assert desk.progress() == (3, 2) and desk.queue().remaining == 3
