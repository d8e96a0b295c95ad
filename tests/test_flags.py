"""`picsearch flags --json`: one line per indexed photo, the flag as search applies it now."""

from __future__ import annotations

import json
from pathlib import Path

from typer.testing import CliRunner

from picsearch.index import image_id
from picsearch.index.desk import ReviewDesk
from picsearch.interfaces.cli import app
from review_gallery import PHOTOS, THRESHOLD, build_review_index


def flags_json(index_dir: Path) -> list[dict]:
    result = CliRunner().invoke(app, ["flags", "--index", str(index_dir), "--json"])
    assert result.exit_code == 0, result.output
    return [json.loads(line) for line in result.output.splitlines()]


def test_one_line_per_photo_with_the_detectors_verdict(tmp_path):
    index_dir = build_review_index(tmp_path)
    records = flags_json(index_dir)
    assert [set(r) for r in records] == [{"id", "path", "flagged", "probability", "review"}] * len(PHOTOS)
    by_id = {r["id"]: r for r in records}
    for name, probability in PHOTOS:
        record = by_id[image_id(name)]
        assert Path(record["path"]) == (tmp_path / "gallery" / name).resolve()
        assert record["probability"] == round(probability, 6)
        assert record["flagged"] is (probability >= THRESHOLD) and record["review"] is None


def test_reviews_change_the_flag_and_are_shown(tmp_path):
    index_dir = build_review_index(tmp_path)
    desk = ReviewDesk.open(index_dir)
    desk.decide(image_id("a.png"), "clear", "an adult in a costume", "ann")
    desk.decide(image_id("f.png"), "flag", "a child at the edge", "bob")
    by_id = {r["id"]: r for r in flags_json(index_dir)}
    cleared, flagged = by_id[image_id("a.png")], by_id[image_id("f.png")]
    assert cleared["flagged"] is False and cleared["review"]["decision"] == "clear"
    assert cleared["review"]["why"] == "an adult in a costume" and cleared["review"]["who"] == "ann"
    assert flagged["flagged"] is True and flagged["review"]["decision"] == "flag"
    assert sum(r["flagged"] for r in by_id.values()) == sum(p >= THRESHOLD for _, p in PHOTOS)  # -1 +1


def test_a_missing_index_is_one_line(tmp_path):
    result = CliRunner().invoke(app, ["flags", "--index", str(tmp_path / "none"), "--json"])
    assert result.exit_code == 2 and "no index here" in result.output and "Traceback" not in result.output
