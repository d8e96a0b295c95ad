"""Safe, atomic file writes shared by every layer: bytes, numpy without pickle, JSON.

A file is written to a unique temporary name beside it, synced, then renamed into place, so
readers (and an interrupted run) never see a partial file."""

from __future__ import annotations

import hashlib
import json
import os
import tempfile
from contextlib import contextmanager
from pathlib import Path
from typing import Any, BinaryIO, Iterator

import numpy as np


@contextmanager
def atomic_file(path: Path) -> Iterator[BinaryIO]:
    """A binary handle on a temporary file that replaces ``path`` only once fully written and synced."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, name = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    tmp = Path(name)
    try:
        with os.fdopen(fd, "wb") as handle:
            yield handle
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)


def write_bytes(path: Path, data: bytes) -> None:
    """Write ``data`` to ``path`` atomically."""
    with atomic_file(path) as handle:
        handle.write(data)


def save_array(path: Path, array: np.ndarray) -> None:
    """Write ``array`` as ``.npy`` without pickle, atomically (streamed: memory-mapped input stays on disk)."""
    if array.dtype == object:
        raise TypeError(f"{path}: object arrays would need pickle; convert to a fixed dtype")
    with atomic_file(path) as handle:
        np.save(handle, array, allow_pickle=False)


def load_array(path: Path, mmap: bool = False) -> np.ndarray:
    """Read a ``.npy`` file with ``allow_pickle=False``; ``mmap`` maps it read-only."""
    if not path.is_file():
        raise FileNotFoundError(f"{path}: missing file")
    try:
        return np.load(path, allow_pickle=False, mmap_mode="r" if mmap else None)
    except ValueError as exc:
        raise ValueError(f"{path}: not a readable .npy array ({exc})") from exc


def save_json(path: Path, data: Any) -> None:
    """Write ``data`` as indented UTF-8 JSON, atomically."""
    write_bytes(path, (json.dumps(data, indent=1, ensure_ascii=False) + "\n").encode("utf-8"))


def load_json(path: Path) -> Any:
    """Read a JSON file; errors name the file."""
    if not path.is_file():
        raise FileNotFoundError(f"{path}: missing file")
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except json.JSONDecodeError as exc:
        raise ValueError(f"{path}: line {exc.lineno}: invalid JSON ({exc.msg})") from exc
    except UnicodeDecodeError as exc:
        raise ValueError(f"{path}: not UTF-8 text (byte {exc.start}), so not JSON") from exc


def file_sha256(path: Path) -> str:
    """Hex sha256 of a file's bytes, read in 1 MiB blocks (provenance hashes in model cards)."""
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()
