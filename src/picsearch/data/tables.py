"""Load the six inputs of the course layout into typed pandas tables.

Layout (all under one folder):
- ``train_dataset.csv``: comma, header ``image,query_id,query_text``
- ``ExpertAnnotations.tsv``: tab, no header: image, query_id, first_exp, second_exp, third_exp (1..4)
- ``CrowdAnnotations.tsv``: tab, no header: image, query_id, true_frac, true_cnt, false_cnt
- ``test_queries.csv``: ``|``, unnamed index column, then ``query_id|query_text|image``
- ``train_images/``, ``test_images/``

:func:`parse_table` reads a file line by line and collects every shape problem (separator,
column count, empty or non-numeric fields) with its line; the ``load_*`` functions raise the
first one as :class:`DataFormatError`. Range and cross-table checks live in
:mod:`picsearch.data.validate`.
"""

from __future__ import annotations

import csv
import io
import math
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
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
CROWD_COUNTS = ["true_cnt", "false_cnt"]
TRAIN_COLUMNS = ["image", "query_id", "query_text"]
TEST_QUERY_COLUMNS = ["query_id", "query_text", "image"]

_SEPARATORS = (",", "\t", "|", ";")


class DataFormatError(ValueError):
    """A data file does not have the expected shape; the message names file, line and field."""


@dataclass(frozen=True)
class Problem:
    """One problem in the data, rendered as ``file:line: field: message`` (line/field when known)."""

    file: str
    line: int | None
    field: str | None
    message: str

    def __str__(self) -> str:
        where = self.file if self.line is None else f"{self.file}:{self.line}"
        return f"{where}: {self.field}: {self.message}" if self.field else f"{where}: {self.message}"


@dataclass(frozen=True)
class TableSpec:
    """The expected shape of one table file."""

    file: str
    sep: str
    columns: tuple[str, ...]
    header: tuple[str, ...] | None = None  # exact header fields, None when the file has no header
    integers: tuple[str, ...] = ()
    floats: tuple[str, ...] = ()
    index_column: bool = False  # a leading unnamed index column, dropped after reading

    @property
    def fields(self) -> tuple[str, ...]:
        return ("index", *self.columns) if self.index_column else self.columns


TRAIN = TableSpec(TRAIN_CSV, ",", tuple(TRAIN_COLUMNS), header=tuple(TRAIN_COLUMNS))
EXPERT = TableSpec(EXPERT_TSV, "\t", tuple(EXPERT_COLUMNS), integers=tuple(EXPERT_SCORES))
CROWD = TableSpec(CROWD_TSV, "\t", tuple(CROWD_COLUMNS), integers=tuple(CROWD_COUNTS), floats=("true_frac",))
TEST_QUERIES = TableSpec(
    TEST_QUERIES_CSV, "|", tuple(TEST_QUERY_COLUMNS), header=("", *TEST_QUERY_COLUMNS), index_column=True
)
TABLES = (TRAIN, EXPERT, CROWD, TEST_QUERIES)


@dataclass
class ParsedTable:
    """The well-shaped rows of a file, their 1-based line numbers, and the problems found.

    Numeric columns are float with NaN where a value did not parse, int64 when all parsed.
    """

    frame: pd.DataFrame
    lines: np.ndarray
    problems: list[Problem] = field(default_factory=list)


def caption_image(query_id: str) -> str:
    """The image a caption was written for: ``'123_abc.jpg#2'`` -> ``'123_abc.jpg'``."""
    return query_id.rsplit("#", 1)[0]


def parse_table(path: Path, spec: TableSpec, name: str | None = None) -> ParsedTable:
    """Read ``path`` as ``spec`` and collect every problem; ``name`` labels it in problems (default: the path)."""
    name = str(path) if name is None else name
    empty = ParsedTable(pd.DataFrame(columns=list(spec.columns), dtype=str), np.zeros(0, dtype=int))
    if not path.is_file():
        empty.problems.append(Problem(name, None, None, "missing file"))
        return empty
    raw = path.read_bytes()
    try:
        text = raw.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        line = raw[: exc.start].count(b"\n") + 1
        empty.problems.append(Problem(name, line, None, f"not UTF-8 text: {exc.reason}"))
        return empty
    rows, lines, problems = _split_rows(text, spec, name)
    if not rows and not problems:
        problems.append(Problem(name, None, None, "no data rows"))
    frame = pd.DataFrame(rows, columns=list(spec.fields), dtype=str)
    if spec.index_column:
        frame = frame.drop(columns="index")
    problems += _check_cells(frame, np.asarray(lines, dtype=int), spec, name)
    return ParsedTable(frame.reset_index(drop=True), np.asarray(lines, dtype=int), problems)


def _split_rows(text: str, spec: TableSpec, name: str) -> tuple[list[list[str]], list[int], list[Problem]]:
    quoting = csv.QUOTE_MINIMAL if spec.sep == "," else csv.QUOTE_NONE  # tsv/psv captions may contain quotes
    reader = csv.reader(io.StringIO(text, newline=""), delimiter=spec.sep, quoting=quoting, strict=True)
    rows: list[list[str]] = []
    lines: list[int] = []
    problems: list[Problem] = []
    header_pending = spec.header is not None
    while True:
        line = reader.line_num + 1
        try:
            row = next(reader)
        except StopIteration:
            break
        except csv.Error as exc:
            problems.append(Problem(name, line, None, f"cannot parse: {exc}"))
            continue
        if not row or row == [""]:
            continue
        if len(row) != len(spec.fields):
            problems.append(Problem(name, line, None, _count_message(row, spec)))
        elif header_pending:
            if tuple(row) != spec.header:
                expected = spec.sep.join(spec.header or ())
                message = f"header must be {expected!r}, found {spec.sep.join(row)!r}"
                problems.append(Problem(name, line, None, message))
        else:
            rows.append(row)
            lines.append(line)
        header_pending = False
    return rows, lines, problems


def _count_message(row: list[str], spec: TableSpec) -> str:
    message = f"expected {len(spec.fields)} fields separated by {spec.sep!r}, found {len(row)}"
    joined = spec.sep.join(row)
    for other in _SEPARATORS:
        if other != spec.sep and len(joined.split(other)) == len(spec.fields):
            return f"{message} (the line looks {other!r}-separated)"
    return message


def _check_cells(frame: pd.DataFrame, lines: np.ndarray, spec: TableSpec, name: str) -> list[Problem]:
    problems: list[Problem] = []
    numeric = set(spec.integers) | set(spec.floats)
    for column in spec.columns:
        if column in numeric:
            values, bad = _parse_numbers(frame[column], integer=column in spec.integers)
            problems += [Problem(name, int(lines[i]), column, message) for i, message in bad]
            frame[column] = values.astype("int64") if column in spec.integers and not bad else values
        else:
            blank = frame[column].str.strip() == ""
            problems += [Problem(name, int(lines[i]), column, "empty value") for i in np.flatnonzero(blank)]
    problems.sort(key=lambda p: (p.line or 0, spec.fields.index(p.field) if p.field else -1))
    return problems


def _parse_numbers(cells: pd.Series, integer: bool) -> tuple[np.ndarray, list[tuple[int, str]]]:
    values = np.full(len(cells), np.nan)
    bad: list[tuple[int, str]] = []
    for i, cell in enumerate(cells):
        try:
            number = float(cell)
        except ValueError:
            number = math.nan
        if not cell.strip():
            bad.append((i, "empty value"))
        elif not math.isfinite(number):
            bad.append((i, f"not a number: {cell!r}"))
        elif integer and not number.is_integer():
            bad.append((i, f"not an integer: {cell!r}"))
        else:
            values[i] = number
    return values, bad


def _load(path: Path, spec: TableSpec) -> pd.DataFrame:
    table = parse_table(path, spec)
    if table.problems:
        more = len(table.problems) - 1
        suffix = f" (and {more} more; run `picsearch validate` to list them)" if more else ""
        raise DataFormatError(f"{table.problems[0]}{suffix}")
    return table.frame


def load_train(root: Path) -> pd.DataFrame:
    """``train_dataset.csv``: one row per (image, caption) pair the experts rated."""
    return _load(Path(root) / TRAIN_CSV, TRAIN)


def load_expert(root: Path) -> pd.DataFrame:
    """``ExpertAnnotations.tsv`` with integer scores ``first_exp``, ``second_exp``, ``third_exp``."""
    return _load(Path(root) / EXPERT_TSV, EXPERT)


def load_crowd(root: Path) -> pd.DataFrame:
    """``CrowdAnnotations.tsv`` with ``true_frac`` (float) and vote counts (int)."""
    return _load(Path(root) / CROWD_TSV, CROWD)


def load_test_queries(path: Path) -> pd.DataFrame:
    """A ``test_queries.csv``-format file: ``|``-separated, unnamed index, ``query_id|query_text|image``."""
    return _load(Path(path), TEST_QUERIES)
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
