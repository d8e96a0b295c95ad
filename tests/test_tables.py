"""Loading the course tables: shapes, types, quoting, and errors naming file, line and field."""

from __future__ import annotations

from pathlib import Path

import pytest

from picsearch.data import load_dataset
from picsearch.data.tables import (
    CROWD,
    DataFormatError,
    caption_image,
    load_crowd,
    load_expert,
    load_test_queries,
    load_train,
    parse_table,
)
from tiny_dataset import CAPTIONS, TEST_CAPTIONS, replace_line, write_tiny_dataset


@pytest.fixture
def root(tmp_path: Path) -> Path:
    return write_tiny_dataset(tmp_path / "data")


def test_tables_load_with_types(root: Path) -> None:
    dataset = load_dataset(root)
    assert list(dataset.train.columns) == ["image", "query_id", "query_text"]
    assert list(dataset.test_queries.columns) == ["query_id", "query_text", "image"]
    assert dataset.expert[["first_exp", "second_exp", "third_exp"]].dtypes.eq("int64").all()
    assert str(dataset.crowd["true_frac"].dtype) == "float64"
    assert dataset.crowd[["true_cnt", "false_cnt"]].dtypes.eq("int64").all()
    assert (len(dataset.train), len(dataset.expert), len(dataset.crowd), len(dataset.test_queries)) == (16, 16, 12, 3)
    assert dataset.crowd["true_frac"].iloc[-1] == 0.25


def test_quoted_captions_keep_commas_and_quotes(root: Path) -> None:
    texts = load_dataset(root).query_texts()
    assert texts["b.jpg#0"] == CAPTIONS["b.jpg#0"]  # contains a comma
    assert texts["d.jpg#1"] == 'A "red" car parked on a street .'
    assert texts["t1.jpg#1"] == TEST_CAPTIONS["t1.jpg#1"]


def test_dataset_paths_and_caption_image(root: Path) -> None:
    dataset = load_dataset(root)
    assert dataset.image_path("a.jpg") == root / "train_images" / "a.jpg"
    assert dataset.image_path("t1.jpg") == root / "test_images" / "t1.jpg"
    assert caption_image("1000_ab.jpg#3") == "1000_ab.jpg"


def test_load_error_names_file_line_field_and_counts_the_rest(root: Path) -> None:
    replace_line(root / "ExpertAnnotations.tsv", 3, "b.jpg\tc.jpg#0\t1\tlots\t1")
    replace_line(root / "ExpertAnnotations.tsv", 4, "b.jpg\td.jpg#1\t1\t1\tnone")
    expected = r"ExpertAnnotations\.tsv:3: second_exp: not a number: 'lots' \(and 1 more"
    with pytest.raises(DataFormatError, match=expected):
        load_expert(root)


def test_load_errors_for_shape(root: Path) -> None:
    replace_line(root / "CrowdAnnotations.tsv", 2, "a.jpg,b.jpg#0,0,0,3")
    with pytest.raises(DataFormatError, match=r"CrowdAnnotations\.tsv:2: expected 5 fields .* looks ','-separated"):
        load_crowd(root)
    (root / "train_dataset.csv").unlink()
    with pytest.raises(DataFormatError, match=r"train_dataset\.csv: missing file"):
        load_train(root)


def test_parse_table_keeps_line_numbers_past_blank_and_bad_lines(root: Path) -> None:
    path = root / "CrowdAnnotations.tsv"
    lines = path.read_text().splitlines()
    path.write_text("\n".join([lines[0], "", "broken line", *lines[1:3]]) + "\n")
    table = parse_table(path, CROWD, name="crowd")
    assert table.lines.tolist() == [1, 4, 5]
    assert [str(p) for p in table.problems] == ["crowd:3: expected 5 fields separated by '\\t', found 1"]
    assert table.frame["image"].tolist() == ["a.jpg", "a.jpg", "a.jpg"]


def test_test_queries_load_from_any_path(root: Path, tmp_path: Path) -> None:
    other = tmp_path / "my_queries.csv"
    other.write_text("|query_id|query_text|image\n0|x.jpg#0|A horse .|x.jpg\n")
    frame = load_test_queries(other)
    assert frame.to_dict("records") == [{"query_id": "x.jpg#0", "query_text": "A horse .", "image": "x.jpg"}]


@pytest.mark.data
def test_real_tables_have_the_known_counts(real_data: Path) -> None:
    dataset = load_dataset(real_data)
    assert len(dataset.expert) == 5822
    assert len(dataset.train) == 5822
    assert len(dataset.crowd) == 47830
    assert len(dataset.test_queries) == 500
    assert len(list(dataset.train_images_dir.glob("*.jpg"))) == 1000
    assert len(list(dataset.test_images_dir.glob("*.jpg"))) == 100
