"""validate_dataset and `picsearch validate` on a tiny dataset broken in each way it can be."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest
from typer.testing import CliRunner

from picsearch import config
from picsearch.data.validate import Problem, validate_dataset
from picsearch.interfaces.cli import app
from tiny_dataset import line_of, replace_line, write_tiny_dataset

EXPERT = "ExpertAnnotations.tsv"
CROWD = "CrowdAnnotations.tsv"
TRAIN = "train_dataset.csv"
QUERIES = "test_queries.csv"


@pytest.fixture
def root(tmp_path: Path) -> Path:
    return write_tiny_dataset(tmp_path / "data")


def problems_of(root: Path) -> list[Problem]:
    return validate_dataset(root, workers=2).problems


def only(problems: list[Problem], file: str, line: int | None, field: str | None) -> Problem:
    found = [p for p in problems if (p.file, p.line, p.field) == (file, line, field)]
    assert len(found) == 1, f"expected one problem at {file}:{line}: {field}, got {[str(p) for p in problems]}"
    return found[0]


def test_tiny_dataset_is_clean_and_summarized(root: Path) -> None:
    report = validate_dataset(root)
    assert report.ok, report.render_problems()
    expected = {
        "rows: ExpertAnnotations.tsv": 16,
        "rows: CrowdAnnotations.tsv": 12,
        "images: train_images/": 4,
        "images: test_images/": 2,
        "queries: test_queries.csv": 3,
        "pairs: rated by both": 10,
        "coverage: expert pairs the crowd also rated": "10/16 (62.5%)",
        "coverage: crowd pairs the experts also rated": "10/12 (83.3%)",
        "queries: crowd query_id with known text": 6,
    }
    assert {key: report.summary[key] for key in expected} == expected


def test_problem_renders_file_line_field_message() -> None:
    assert str(Problem("a.tsv", 3, "true_frac", "bad")) == "a.tsv:3: true_frac: bad"
    assert str(Problem("a.tsv", 3, None, "bad")) == "a.tsv:3: bad"
    assert str(Problem("a.tsv", None, None, "missing file")) == "a.tsv: missing file"


def test_missing_file_and_folder(root: Path) -> None:
    (root / CROWD).unlink()
    shutil.rmtree(root / "test_images")
    problems = problems_of(root)
    assert only(problems, CROWD, None, None).message == "missing file"
    assert only(problems, "test_images/", None, None).message == "missing folder"


def test_empty_table(root: Path) -> None:
    (root / TRAIN).write_text("image,query_id,query_text\n")
    assert only(problems_of(root), TRAIN, None, None).message == "no data rows"


def test_wrong_separator_and_column_count(root: Path) -> None:
    replace_line(root / EXPERT, 3, "b.jpg,c.jpg#0,1,1,1")
    replace_line(root / CROWD, 2, "a.jpg\tb.jpg#0\t0\t3")
    replace_line(root / QUERIES, 1, "query_id|query_text|image")
    replace_line(root / TRAIN, 1, "image,query,query_text")
    problems = problems_of(root)
    assert "found 1" in only(problems, EXPERT, 3, None).message
    assert "looks ','-separated" in only(problems, EXPERT, 3, None).message
    assert "expected 5 fields separated by '\\t', found 4" in only(problems, CROWD, 2, None).message
    assert "expected 4 fields" in only(problems, QUERIES, 1, None).message
    assert "header must be 'image,query_id,query_text'" in only(problems, TRAIN, 1, None).message


def test_non_numeric_and_non_integer_values(root: Path) -> None:
    replace_line(root / EXPERT, 2, "a.jpg\tb.jpg#0\t1\tx\t2.5")
    replace_line(root / CROWD, 4, "a.jpg\td.jpg#1\t\t3\t0")
    problems = problems_of(root)
    assert only(problems, EXPERT, 2, "second_exp").message == "not a number: 'x'"
    assert only(problems, EXPERT, 2, "third_exp").message == "not an integer: '2.5'"
    assert only(problems, CROWD, 4, "true_frac").message == "empty value"


def test_out_of_range_values(root: Path) -> None:
    replace_line(root / EXPERT, 1, "a.jpg\ta.jpg#0\t5\t4\t0")
    replace_line(root / CROWD, 1, "a.jpg\ta.jpg#0\t1.5\t3\t0")
    replace_line(root / CROWD, 2, "a.jpg\tb.jpg#0\t0\t-1\t3")
    replace_line(root / CROWD, 3, "a.jpg\tc.jpg#0\t0\t0\t0")
    problems = problems_of(root)
    assert only(problems, EXPERT, 1, "first_exp").message == "5 is outside 1..4"
    assert only(problems, EXPERT, 1, "third_exp").message == "0 is outside 1..4"
    assert only(problems, CROWD, 1, "true_frac").message == "1.5 is outside 0..1"
    assert only(problems, CROWD, 2, "true_cnt").message == "-1 is negative"
    assert "no votes" in only(problems, CROWD, 3, "true_cnt").message


def test_true_frac_must_match_counts_within_rounding(root: Path) -> None:
    replace_line(root / CROWD, 1, "a.jpg\ta.jpg#0\t0.5\t1\t2")
    replace_line(root / CROWD, 2, "a.jpg\tb.jpg#0\t0.33\t1\t2")  # rounded 1/3: fine
    problems = problems_of(root)
    assert only(problems, CROWD, 1, "true_frac").message == "0.5 does not match 1/(1+2) = 0.333"
    assert [p for p in problems if p.line == 2] == []


def test_malformed_query_ids(root: Path) -> None:
    replace_line(root / CROWD, 1, "a.jpg\ta.jpg#7\t1\t3\t0")
    replace_line(root / CROWD, 2, "a.jpg\tb.png#0\t0\t0\t3")
    replace_line(root / CROWD, 3, "a.jpg\tc.jpg\t0\t0\t3")
    replace_line(root / QUERIES, 2, "0|t1.jpg#x|A cat sleeps on a sofa .|t1.jpg")
    problems = problems_of(root)
    for line, value in ((1, "a.jpg#7"), (2, "b.png#0"), (3, "c.jpg")):
        assert only(problems, CROWD, line, "query_id").message.startswith(f"malformed {value!r}")
    assert only(problems, QUERIES, 2, "query_id").message.startswith("malformed 't1.jpg#x'")


def test_duplicate_rows_and_pairs(root: Path) -> None:
    expert = (root / EXPERT).read_text().splitlines()
    crowd = (root / CROWD).read_text().splitlines()
    (root / EXPERT).write_text("\n".join([*expert, expert[1]]) + "\n")
    (root / CROWD).write_text("\n".join([*crowd, "a.jpg\ta.jpg#0\t0\t0\t3"]) + "\n")
    problems = problems_of(root)
    assert only(problems, EXPERT, len(expert) + 1, None).message == "duplicate row (same as line 2)"
    message = only(problems, CROWD, len(crowd) + 1, "query_id").message
    assert message == "duplicate image+query_id (first on line 1) with different values"


def test_referenced_images_missing_on_disk(root: Path) -> None:
    (root / "train_images" / "c.jpg").unlink()
    (root / "test_images" / "t2.jpg").unlink()
    problems = problems_of(root)
    first_train = line_of(root / TRAIN, "c.jpg,")
    message = only(problems, TRAIN, first_train, "image").message
    assert message == "'c.jpg' not found in train_images/ (referenced on 4 lines)"
    assert only(problems, EXPERT, line_of(root / EXPERT, "c.jpg\t"), "image").message.startswith("'c.jpg' not found")
    assert only(problems, CROWD, line_of(root / CROWD, "c.jpg\t"), "image").message.startswith("'c.jpg' not found")
    assert only(problems, QUERIES, 4, "image").message == "'t2.jpg' not found in test_images/"


def test_undecodable_images(root: Path) -> None:
    (root / "train_images" / "d.jpg").write_bytes(b"this is not a jpeg")
    whole = (root / "test_images" / "t1.jpg").read_bytes()
    (root / "test_images" / "t1.jpg").write_bytes(whole[: len(whole) // 2])
    problems = problems_of(root)
    assert "not a decodable image" in only(problems, "train_images/d.jpg", None, None).message
    assert "truncated" in only(problems, "test_images/t1.jpg", None, None).message.lower()


def test_cross_table_consistency(root: Path) -> None:
    replace_line(root / QUERIES, 3, "1|t1.jpg#1|A grey cat , asleep .|t2.jpg")
    train = (root / TRAIN).read_text().splitlines()
    (root / TRAIN).write_text("\n".join(train[:-1]) + "\n")
    problems = problems_of(root)
    assert "not the image query_id 't1.jpg#1' was written for" in only(problems, QUERIES, 3, "image").message
    assert f"is not in {TRAIN}" in only(problems, EXPERT, 16, "query_id").message


def test_not_utf8(root: Path) -> None:
    (root / CROWD).write_bytes((root / CROWD).read_bytes() + b"a.jpg\t\xff\xfe.jpg#0\t0\t0\t3\n")
    assert only(problems_of(root), CROWD, 13, None).message.startswith("not UTF-8 text")


def test_all_problems_reported_in_one_run(root: Path) -> None:
    replace_line(root / EXPERT, 2, "a.jpg\tb.jpg#0\t1\tx\t1")
    replace_line(root / EXPERT, 5, "b.jpg\ta.jpg#0\t9\t1\t1")
    replace_line(root / CROWD, 1, "a.jpg\ta.jpg#9\t1\t3\t0")
    replace_line(root / CROWD, 2, "a.jpg,b.jpg#0,0,0,3")
    (root / "train_images" / "d.jpg").write_bytes(b"junk")
    problems = problems_of(root)
    where = {(p.file, p.line, p.field) for p in problems}
    assert {
        (EXPERT, 2, "second_exp"),
        (EXPERT, 5, "first_exp"),
        (CROWD, 1, "query_id"),
        (CROWD, 2, None),
        ("train_images/d.jpg", None, None),
    } <= where


runner = CliRunner()


def test_cli_clean_exits_0(root: Path) -> None:
    result = runner.invoke(app, ["validate", "--data", str(root)])
    assert result.exit_code == 0, result.output
    assert "clean" in result.output and "rows: ExpertAnnotations.tsv" in result.output


def test_cli_problems_exit_2_and_are_listed(root: Path) -> None:
    replace_line(root / EXPERT, 2, "a.jpg\tb.jpg#0\t1\tx\t1")
    (root / "train_images" / "d.jpg").write_bytes(b"junk")
    result = runner.invoke(app, ["validate"], env={"PICSEARCH_DATA": str(root)})
    assert result.exit_code == 2
    assert "ExpertAnnotations.tsv:2: second_exp: not a number: 'x'" in result.output
    assert "train_images/d.jpg: not a decodable image" in result.output
    assert "2 problem(s)" in result.output


def test_cli_missing_folder_names_all_three_sources(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    result = runner.invoke(app, ["validate", "--data", str(tmp_path / "nowhere")])
    assert result.exit_code == 2
    message = " ".join(result.output.split())
    assert "(from --data)" in message
    assert all(word in message for word in ("--data", "$PICSEARCH_DATA", "/datasets/image_search"))
    monkeypatch.setattr(config, "DEFAULT_DATA", tmp_path / "default")
    result = runner.invoke(app, ["validate"], env={"PICSEARCH_DATA": None})
    assert result.exit_code == 2
    assert "(from default)" in " ".join(result.output.split())


@pytest.mark.data
@pytest.mark.slow
def test_real_data_is_clean(real_data: Path) -> None:
    report = validate_dataset(real_data)
    assert report.ok, report.render_problems()
    known = {
        "pairs: expert": 5822,
        "pairs: crowd": 47830,
        "images: train_images/": 1000,
        "images: test_images/": 100,
        "queries: test_queries.csv": 500,
    }
    assert {key: report.summary[key] for key in known} == known
