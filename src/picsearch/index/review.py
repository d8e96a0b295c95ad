"""Human review of the child detector's flags: an append-only decision log in the index folder.

An operator clears a false alarm or flags a photo the detector missed. Each decision is bound to the
photo's content hash, so a changed file falls back to the detector's verdict until someone reviews it
again. The log, ``INDEX/reviews.jsonl``, holds one JSON object a line::

    {"id": ..., "hash": ..., "decision": "clear" | "flag", "who": ..., "when": ISO-8601 UTC, "why": ...}

A line is written by one ``write`` on a file opened with ``O_APPEND``, under an exclusive ``flock``,
then fsynced: concurrent reviewers never interleave. A line cut short by a crash is skipped with a
warning naming the file and line (it was never acknowledged); the next write starts on a fresh line.
The log is never rewritten: re-indexing leaves it alone, and the latest decision for a hash wins.
"""

from __future__ import annotations

import fcntl
import json
import os
import threading
import warnings
from dataclasses import asdict, dataclass
from datetime import datetime, timezone
from pathlib import Path
from typing import Iterable, Literal

import numpy as np

from picsearch.data.files import UncheckedFileError
from picsearch.index.gallery import GalleryIndex

LOG_NAME = "reviews.jsonl"
DECISIONS = ("clear", "flag")
MAX_REASON_CHARS = 500
Decision = Literal["clear", "flag"]


class TornLineWarning(UserWarning):
    """A log line that is not a complete JSON record (a write cut short); it is skipped."""


@dataclass(frozen=True)
class Review:
    """One operator decision about one version (content hash) of one photo."""

    id: str
    hash: str
    decision: Decision
    who: str
    when: str
    why: str

    def to_json(self) -> dict:
        return asdict(self)


def content_hash(index: GalleryIndex, row: int) -> str:
    """The content hash the index checked for ``row``: what a decision is bound to."""
    return index.hashes[row]


def make_review(image_id: str, digest: str, decision: str, who: str, why: str) -> Review:
    """A checked decision stamped with the current UTC time; ValueError names the bad field."""
    if decision not in DECISIONS:
        raise ValueError(f"decision: must be one of {', '.join(DECISIONS)}, got {decision!r}")
    why, who = why.strip(), who.strip()
    if not why:
        raise ValueError("reason: must not be empty (say why, for the audit log)")
    if len(why) > MAX_REASON_CHARS:
        raise ValueError(f"reason: at most {MAX_REASON_CHARS} characters, got {len(why)}")
    if not who:
        raise ValueError("by: must not be empty")
    when = datetime.now(timezone.utc).isoformat(timespec="seconds")
    return Review(image_id, digest, decision, who, when, why)  # type: ignore[arg-type]


class ReviewLog:
    """The append-only JSON-lines log of decisions at ``path``."""

    def __init__(self, path: Path) -> None:
        self.path = Path(path)

    @classmethod
    def of_index(cls, folder: Path) -> "ReviewLog":
        return cls(Path(folder) / LOG_NAME)

    def signature(self) -> tuple[int, int] | None:
        """(size, mtime_ns) of the log, None while it does not exist: readers reload when it changes."""
        try:
            stat = self.path.stat()
        except FileNotFoundError:
            return None
        return stat.st_size, stat.st_mtime_ns

    def append(self, review: Review) -> None:
        """Add one decision: a single O_APPEND write under an exclusive lock, then fsync."""
        line = json.dumps(review.to_json(), ensure_ascii=False).encode("utf-8") + b"\n"
        self.path.parent.mkdir(parents=True, exist_ok=True)
        fd = os.open(self.path, os.O_RDWR | os.O_APPEND | os.O_CREAT, 0o644)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX)
            if _ends_mid_line(fd):  # a torn line from a crash: keep it apart from this record
                line = b"\n" + line
            os.write(fd, line)
            os.fsync(fd)
        finally:
            os.close(fd)  # closing releases the lock

    def read(self) -> list[Review]:
        """All complete decisions in log order; torn lines are skipped with a :class:`TornLineWarning`."""
        if not self.path.is_file():
            return []
        reviews = []
        with open(self.path, "rb") as handle:
            for number, raw in enumerate(handle, start=1):
                if raw.strip():
                    review = self._parse(raw, number)
                    if review is not None:
                        reviews.append(review)
        return reviews

    def _parse(self, raw: bytes, number: int) -> Review | None:
        try:
            record = json.loads(raw)
        except (json.JSONDecodeError, UnicodeDecodeError):
            warnings.warn(f"{self.path}: line {number}: incomplete record skipped (a write cut short)",
                          TornLineWarning, stacklevel=3)
            return None
        if not isinstance(record, dict):
            raise ValueError(f"{self.path}: line {number}: expected a JSON object")
        for name in Review.__dataclass_fields__:
            if not isinstance(record.get(name), str):
                raise ValueError(f"{self.path}: line {number}: field {name}: missing or not a string")
        if record["decision"] not in DECISIONS:
            raise ValueError(f"{self.path}: line {number}: field decision: {record['decision']!r} is not clear/flag")
        return Review(**{name: record[name] for name in Review.__dataclass_fields__})


def _ends_mid_line(fd: int) -> bool:
    size = os.fstat(fd).st_size
    return size > 0 and os.pread(fd, 1, size - 1) != b"\n"


def current_reviews(index: GalleryIndex, reviews: Iterable[Review]) -> dict[int, Review]:
    """Row -> the latest decision about the row's current content (decisions on other hashes are void)."""
    rows = index.rows()
    latest: dict[int, Review] = {}
    for review in reviews:
        row = rows.get(review.id)
        if row is not None and review.hash == content_hash(index, row):
            latest[row] = review
    return latest


class Moderation:
    """What is hidden now: the index's detector flags with the review log applied.

    :meth:`refresh` re-reads the log only when its size or mtime changed, so callers may call it on
    every request; a decision takes effect at once, without re-indexing. ``reviews`` and ``decisions``
    are swapped together, so a concurrent reader sees one consistent pair.
    """

    def __init__(self, index: GalleryIndex, log: ReviewLog | None) -> None:
        self.index = index
        self.log = log
        self._lock = threading.Lock()
        self._state: tuple[object, dict[int, Review], np.ndarray] = (_UNREAD, {}, _decisions(len(index), {}))

    @property
    def reviews(self) -> dict[int, Review]:
        """Row -> its current decision."""
        return self._state[1]

    @property
    def decisions(self) -> np.ndarray:
        """Row -> -1 (no current decision), 0 (cleared) or 1 (flagged); a new array after each change."""
        return self._state[2]

    def hidden(self, rows: np.ndarray | None = None) -> np.ndarray:
        """Whether each of ``rows`` (default: all) is hidden: its current decision where there is one,
        else the index's detector flag as it is now."""
        decided, child = self.decisions, np.asarray(self.index.child, dtype=bool)
        if rows is not None:
            decided, child = decided[rows], child[rows]
        return np.where(decided >= 0, decided == 1, child)

    def refresh(self) -> bool:
        """Reload the log if it changed since the last call; True when it was re-read."""
        with self._lock:
            signature = self.log.signature() if self.log else None
            if signature == self._state[0]:
                return False
            reviews = current_reviews(self.index, self.log.read()) if self.log else {}
            self._state = (signature, reviews, _decisions(len(self.index), reviews))
            return True


def _decisions(n: int, reviews: dict[int, Review]) -> np.ndarray:
    decided = np.full(n, -1, dtype=np.int8)
    for row, review in reviews.items():
        decided[row] = review.decision == "flag"
    return decided


_UNREAD = object()


def bind(index: GalleryIndex, image_id: str, decision: str, why: str, who: str) -> Review:
    """A decision about ``image_id`` bound to its indexed hash, after checking the file still has it.

    A file changed since indexing is refused: the operator saw other bytes than the detector scored.
    """
    row = index.rows().get(image_id)
    if row is None:
        raise KeyError(f"unknown image id {image_id!r}")
    try:
        index.checked_file(row)  # the one identity check: same bytes, inside the gallery
    except UncheckedFileError as exc:
        raise ValueError(
            f"{index.absolute_path(row)}: file changed or gone since it was indexed ({exc.args[0]}); "
            "re-index it before reviewing"
        ) from None
    return make_review(image_id, content_hash(index, row), decision, who, why)


__all__ = [
    "DECISIONS",
    "LOG_NAME",
    "Moderation",
    "Review",
    "ReviewLog",
    "TornLineWarning",
    "bind",
    "content_hash",
    "current_reviews",
    "make_review",
]
