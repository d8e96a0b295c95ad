"""Check a dataset folder and collect every problem in one run, each naming file, line and field."""

from __future__ import annotations

import os
import re
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from picsearch.data.files import scan_images
from picsearch.data.images import ImageReadError, read_image
from picsearch.data.tables import (
    CROWD,
    EXPERT,
    EXPERT_SCORES,
    TEST_IMAGES,
    TEST_QUERIES,
    TRAIN,
    TRAIN_IMAGES,
    TABLES,
    ParsedTable,
    Problem,
    caption_image,
    parse_table,
)

__all__ = ["Problem", "ValidationReport", "validate_dataset", "QUERY_ID_PATTERN", "FRAC_TOLERANCE"]

QUERY_ID_PATTERN = re.compile(r"[^#/\\]+\.jpg#[0-4]")
"""``<image name>.jpg#<caption number 0-4>``."""
FRAC_TOLERANCE = 0.005
"""How far ``true_frac`` may be from ``true_cnt / (true_cnt + false_cnt)``: rounding to two decimals."""
EXPERT_RANGE = (1, 4)
NO_VOTES = "no votes: true_cnt + false_cnt is 0"

# Which image folder each table's ``image`` column refers to.
_IMAGE_FOLDER = {
    TRAIN.file: TRAIN_IMAGES,
    EXPERT.file: TRAIN_IMAGES,
    CROWD.file: TRAIN_IMAGES,
    TEST_QUERIES.file: TEST_IMAGES,
}
# Keys that must be unique per table.
_UNIQUE_KEYS = {
    TRAIN.file: ["image", "query_id"],
    EXPERT.file: ["image", "query_id"],
    CROWD.file: ["image", "query_id"],
    TEST_QUERIES.file: ["query_id"],
}


@dataclass
class ValidationReport:
    """All problems found in a dataset folder and a summary of what it holds."""

    root: Path
    problems: list[Problem]
    summary: dict[str, int | str]

    @property
    def ok(self) -> bool:
        return not self.problems

    def render_problems(self) -> str:
        """One ``file:line: field: message`` line per problem."""
        return "\n".join(str(problem) for problem in self.problems)


def validate_dataset(root: Path, workers: int | None = None) -> ValidationReport:
    """Check every table and image under ``root``; ``workers`` threads decode the images."""
    root = Path(root)
    tables = {spec.file: parse_table(root / spec.file, spec, name=spec.file) for spec in TABLES}
    problems = [problem for table in tables.values() for problem in table.problems]
    problems += _check_expert(tables[EXPERT.file])
    problems += _check_crowd(tables[CROWD.file])
    for name, table in tables.items():
        problems += _check_query_ids(name, table)
        problems += _check_duplicates(name, table, _UNIQUE_KEYS[name])
    problems += _check_test_query_images(tables[TEST_QUERIES.file])
    problems += _check_expert_texts(tables[EXPERT.file], tables[TRAIN.file])
    folders = {name: _list_folder(root, name, problems) for name in (TRAIN_IMAGES, TEST_IMAGES)}
    for name, table in tables.items():
        problems += _check_references(name, table, _IMAGE_FOLDER[name], folders)
    problems += _check_decodable(root, folders, workers)
    problems.sort(key=lambda problem: (problem.file, problem.line or 0))
    return ValidationReport(root, problems, _summary(tables, folders))


def _problems_at(
    name: str, table: ParsedTable, mask: np.ndarray, field: str | None, messages: list[str]
) -> list[Problem]:
    lines = table.lines[np.flatnonzero(mask)]
    return [Problem(name, int(line), field, message) for line, message in zip(lines, messages)]


def _check_expert(table: ParsedTable) -> list[Problem]:
    low, high = EXPERT_RANGE
    problems: list[Problem] = []
    for column in EXPERT_SCORES:
        values = table.frame[column].to_numpy(dtype=float)
        bad = (values < low) | (values > high)
        messages = [f"{value:g} is outside {low}..{high}" for value in values[bad]]
        problems += _problems_at(EXPERT.file, table, bad, column, messages)
    return problems


def _check_crowd(table: ParsedTable) -> list[Problem]:
    frame = table.frame
    frac = frame["true_frac"].to_numpy(dtype=float)
    yes = frame["true_cnt"].to_numpy(dtype=float)
    no = frame["false_cnt"].to_numpy(dtype=float)
    problems = []
    bad = (frac < 0) | (frac > 1)
    problems += _problems_at(CROWD.file, table, bad, "true_frac", [f"{v:g} is outside 0..1" for v in frac[bad]])
    for column, values in (("true_cnt", yes), ("false_cnt", no)):
        bad = values < 0
        problems += _problems_at(CROWD.file, table, bad, column, [f"{v:g} is negative" for v in values[bad]])
    total = yes + no
    none = (yes >= 0) & (no >= 0) & (total == 0)
    problems += _problems_at(CROWD.file, table, none, "true_cnt", [NO_VOTES] * none.sum())
    with np.errstate(divide="ignore", invalid="ignore"):
        expected = yes / total
    valid = (yes >= 0) & (no >= 0) & (total > 0) & (frac >= 0) & (frac <= 1)
    off = valid & (np.abs(frac - expected) > FRAC_TOLERANCE)
    messages = [
        f"{f:g} does not match {y:g}/({y:g}+{n:g}) = {e:.3f}"
        for f, y, n, e in zip(frac[off], yes[off], no[off], expected[off])
    ]
    return problems + _problems_at(CROWD.file, table, off, "true_frac", messages)


def _check_query_ids(name: str, table: ParsedTable) -> list[Problem]:
    ids = table.frame["query_id"]
    bad = (~ids.str.fullmatch(QUERY_ID_PATTERN.pattern) & (ids.str.strip() != "")).to_numpy(dtype=bool)
    messages = [f"malformed {value!r}: expected '<image>.jpg#<0-4>'" for value in ids[bad]]
    return _problems_at(name, table, bad, "query_id", messages)


def _check_duplicates(name: str, table: ParsedTable, keys: list[str]) -> list[Problem]:
    frame = table.frame
    first_line = pd.Series(table.lines, index=frame.index).groupby([frame[k] for k in keys]).transform("first")
    full = frame.duplicated(keep="first").to_numpy()
    pair = frame.duplicated(subset=keys, keep="first").to_numpy() & ~full
    what = "+".join(keys)
    problems = _problems_at(name, table, full, None, [f"duplicate row (same as line {n})" for n in first_line[full]])
    messages = [f"duplicate {what} (first on line {n}) with different values" for n in first_line[pair]]
    return sorted(problems + _problems_at(name, table, pair, keys[-1], messages), key=lambda p: p.line or 0)


def _check_test_query_images(table: ParsedTable) -> list[Problem]:
    frame = table.frame
    mismatch = (frame["query_id"].map(caption_image) != frame["image"]).to_numpy(dtype=bool)
    messages = [
        f"{image!r} is not the image query_id {qid!r} was written for"
        for qid, image in zip(frame["query_id"][mismatch], frame["image"][mismatch])
    ]
    return _problems_at(TEST_QUERIES.file, table, mismatch, "image", messages)


def _check_expert_texts(expert: ParsedTable, train: ParsedTable) -> list[Problem]:
    """Every expert pair needs its caption text, which only train_dataset.csv holds."""
    if not len(train.frame):
        return []  # a missing train file is already reported
    known = pd.MultiIndex.from_frame(train.frame[["image", "query_id"]])
    missing = ~pd.MultiIndex.from_frame(expert.frame[["image", "query_id"]]).isin(known)
    messages = [
        f"pair ({image}, {qid}) is not in {TRAIN.file}, so its caption text is unknown"
        for image, qid in zip(expert.frame["image"][missing], expert.frame["query_id"][missing])
    ]
    return _problems_at(EXPERT.file, expert, missing, "query_id", messages)


def _list_folder(root: Path, name: str, problems: list[Problem]) -> list[Path] | None:
    folder = root / name
    if not folder.is_dir():
        problems.append(Problem(f"{name}/", None, None, "missing folder"))
        return None
    listing = scan_images(folder)
    problems += [Problem(f"{name}/{entry}", None, None, reason) for entry, reason in listing.skipped]
    return listing.files


def _check_references(
    name: str, table: ParsedTable, folder: str, folders: dict[str, list[Path] | None]
) -> list[Problem]:
    """One problem per image a table names that its folder lacks (at its first line)."""
    files = folders[folder]
    if files is None:
        return []  # the missing folder is already reported
    on_disk = {path.name for path in files}
    images = table.frame["image"]
    missing = ~images.isin(on_disk) & (images.str.strip() != "")
    problems = []
    for image, rows in images[missing].groupby(images[missing], sort=False).groups.items():
        lines = table.lines[rows]
        also = f" (referenced on {len(lines)} lines)" if len(lines) > 1 else ""
        problems.append(Problem(name, int(lines[0]), "image", f"{image!r} not found in {folder}/{also}"))
    return problems


def _check_decodable(root: Path, folders: dict[str, list[Path] | None], workers: int | None) -> list[Problem]:
    paths = [path for files in folders.values() if files for path in files]
    with ThreadPoolExecutor(max_workers=workers or min(8, os.cpu_count() or 1)) as pool:
        errors = list(pool.map(_decode_error, paths))
    return [
        Problem(path.relative_to(root).as_posix(), None, None, error)
        for path, error in zip(paths, errors)
        if error is not None
    ]


def _decode_error(path: Path) -> str | None:
    try:
        read_image(path)
    except ImageReadError as exc:
        return exc.reason
    return None


def _summary(tables: dict[str, ParsedTable], folders: dict[str, list[Path] | None]) -> dict[str, int | str]:
    train, expert, crowd, test = (tables[spec.file].frame for spec in TABLES)
    summary: dict[str, int | str] = {f"rows: {name}": len(table.frame) for name, table in tables.items()}
    for name, files in folders.items():
        summary[f"images: {name}/"] = "missing" if files is None else len(files)
    referenced = set(train["image"]) | set(expert["image"]) | set(crowd["image"])
    if folders[TRAIN_IMAGES] is not None:
        on_disk = {path.name for path in folders[TRAIN_IMAGES]}
        summary[f"images: {TRAIN_IMAGES}/ not in any table"] = len(on_disk - referenced)
    summary["queries: train_dataset.csv (unique query_id)"] = train["query_id"].nunique()
    summary["queries: CrowdAnnotations.tsv (unique query_id)"] = crowd["query_id"].nunique()
    known = set(train["query_id"]) | set(test["query_id"])
    summary["queries: crowd query_id with known text"] = len(set(crowd["query_id"]) & known)
    summary["queries: test_queries.csv"] = test["query_id"].nunique()
    summary["images: test_queries.csv (unique image)"] = test["image"].nunique()
    expert_pairs = set(zip(expert["image"], expert["query_id"]))
    crowd_pairs = set(zip(crowd["image"], crowd["query_id"]))
    both = len(expert_pairs & crowd_pairs)
    summary["pairs: expert"] = len(expert_pairs)
    summary["pairs: crowd"] = len(crowd_pairs)
    summary["pairs: rated by both"] = both
    summary["coverage: expert pairs the crowd also rated"] = _share(both, len(expert_pairs))
    summary["coverage: crowd pairs the experts also rated"] = _share(both, len(crowd_pairs))
    return summary


def _share(part: int, whole: int) -> str:
    return f"{part}/{whole} ({part / whole:.1%})" if whole else "0/0"
