"""Load the six inputs of the course layout into typed pandas tables.

Layout (all under one folder):
- ``train_dataset.csv``: comma, header ``image,query_id,query_text``
- ``ExpertAnnotations.tsv``: tab, no header: image, query_id, first_exp, second_exp, third_exp (1..4)
- ``CrowdAnnotations.tsv``: tab, no header: image, query_id, true_frac, true_cnt, false_cnt
- ``test_queries.csv``: ``|``, unnamed index column, then ``query_id|query_text|image``
- ``train_images/``, ``test_images/``

Loading is strict about shape (separator, column count) and leaves value checks with line
numbers to :mod:`picsearch.data.validate`.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import pandas as pd

TRAIN_CSV = "train_dataset.csv"
EXPERT_TSV = "ExpertAnnotations.tsv"
CROWD_TSV = "CrowdAnnotations.tsv"
TEST_QUERIES_CSV = "test_queries.csv"
TRAIN_IMAGES = "train_images"
TEST_IMAGES = "test_images"

EXPERT_COLUMNS = ["image", "query_id", "first_exp", "second_exp", "third_exp"]
EXPERT_SCORES = ["first_exp", "second_exp", "third_exp"]
CROWD_COLUMNS = ["image", "query_id", "true_frac", "true_cnt", "false_cnt"]
TRAIN_COLUMNS = ["image", "query_id", "query_text"]
TEST_QUERY_COLUMNS = ["query_id", "query_text", "image"]


class DataFormatError(ValueError):
    """A data file does not have the expected shape; the message names file, line and field."""


def caption_image(query_id: str) -> str:
    """The image a caption was written for: ``'123_abc.jpg#2'`` -> ``'123_abc.jpg'``."""
    return query_id.rsplit("#", 1)[0]


def _read(path: Path, sep: str, names: list[str], header: bool, index_col: int | None = None) -> pd.DataFrame:
    if not path.is_file():
        raise DataFormatError(f"{path}: file not found")
    try:
        frame = pd.read_csv(
            path,
            sep=sep,
            header=0 if header else None,
            index_col=index_col,
            dtype=str,
            keep_default_na=False,
            quoting=3 if sep != "," else 0,  # tsv/psv captions may contain quotes
            engine="python",
        )
    except (pd.errors.ParserError, UnicodeDecodeError) as exc:
        raise DataFormatError(f"{path}: cannot parse with separator {sep!r}: {exc}") from exc
    if len(frame.columns) != len(names):
        raise DataFormatError(
            f"{path}: line 1: expected {len(names)} columns {names} separated by {sep!r}, "
            f"found {len(frame.columns)}"
        )
    if header and list(frame.columns) != names:
        raise DataFormatError(f"{path}: line 1: header must be {','.join(names)}, found {list(frame.columns)}")
    frame.columns = names
    return frame.reset_index(drop=True)


def _numeric(frame: pd.DataFrame, path: Path, columns: list[str], kind: str, header_lines: int) -> pd.DataFrame:
    for column in columns:
        values = pd.to_numeric(frame[column], errors="coerce")
        bad = values.isna()
        if bad.any():
            row = int(bad.idxmax())
            raise DataFormatError(
                f"{path}: line {row + 1 + header_lines}: field {column}: "
                f"not a number: {frame.at[row, column]!r}"
            )
        frame[column] = values.astype(kind)
    return frame


def load_train(root: Path) -> pd.DataFrame:
    """``train_dataset.csv``: one row per (image, caption) pair the experts rated."""
    return _read(root / TRAIN_CSV, ",", TRAIN_COLUMNS, header=True)


def load_expert(root: Path) -> pd.DataFrame:
    """``ExpertAnnotations.tsv`` with integer scores ``first_exp``, ``second_exp``, ``third_exp``."""
    path = root / EXPERT_TSV
    return _numeric(_read(path, "\t", EXPERT_COLUMNS, header=False), path, EXPERT_SCORES, "int64", 0)


def load_crowd(root: Path) -> pd.DataFrame:
    """``CrowdAnnotations.tsv`` with ``true_frac`` (float) and vote counts (int)."""
    path = root / CROWD_TSV
    frame = _read(path, "\t", CROWD_COLUMNS, header=False)
    frame = _numeric(frame, path, ["true_frac"], "float64", 0)
    return _numeric(frame, path, ["true_cnt", "false_cnt"], "int64", 0)


def load_test_queries(path: Path) -> pd.DataFrame:
    """A ``test_queries.csv``-format file: ``|``-separated, unnamed index, ``query_id|query_text|image``."""
    return _read(path, "|", TEST_QUERY_COLUMNS, header=True, index_col=0)


@dataclass(frozen=True)
class Dataset:
    """The whole course dataset, loaded from one folder."""

    root: Path
    train: pd.DataFrame
    expert: pd.DataFrame
    crowd: pd.DataFrame
    test_queries: pd.DataFrame

    @property
    def train_images_dir(self) -> Path:
        return self.root / TRAIN_IMAGES

    @property
    def test_images_dir(self) -> Path:
        return self.root / TEST_IMAGES

    def query_texts(self) -> dict[str, str]:
        """query_id -> caption text, from the training pairs and the test queries."""
        texts = dict(zip(self.train["query_id"], self.train["query_text"]))
        texts.update(zip(self.test_queries["query_id"], self.test_queries["query_text"]))
        return texts

    def image_path(self, image: str) -> Path:
        """Path of a train or test image by file name (train first)."""
        path = self.train_images_dir / image
        return path if path.exists() else self.test_images_dir / image


def load_dataset(root: Path) -> Dataset:
    """Load every table of the dataset at ``root`` (raises :class:`DataFormatError`)."""
    root = Path(root)
    return Dataset(
        root=root,
        train=load_train(root),
        expert=load_expert(root),
        crowd=load_crowd(root),
        test_queries=load_test_queries(root / TEST_QUERIES_CSV),
    )
