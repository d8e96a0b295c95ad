"""One writer per index folder: an exclusive ``flock`` on ``INDEX/.lock``, which names its holder's pid.

The kernel releases the lock when its holder exits, also when it is killed, so a stale lock file
never blocks anyone; the file itself stays (removing it would let two writers lock two files).
Readers (``Searcher.open``) take no lock: the manifest swap is atomic.
"""

from __future__ import annotations

import fcntl
import os
from contextlib import contextmanager
from pathlib import Path
from typing import Callable, Iterator

LOCK_NAME = ".lock"


class IndexLockedError(RuntimeError):
    """Another process is updating the index folder (raised only when not waiting)."""


@contextmanager
def index_lock(folder: Path, wait: bool = True, on_wait: Callable[[str], None] | None = None) -> Iterator[None]:
    """Hold the index folder's lock for the block, creating the folder if needed.

    When another process holds it: with ``wait``, tell ``on_wait`` who (by pid) and block until it is
    released; without, raise :class:`IndexLockedError` with that message.
    """
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    fd = os.open(folder / LOCK_NAME, os.O_RDWR | os.O_CREAT, 0o644)
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            message = f"{folder}: {_holder(fd)} is updating this index"
            if not wait:
                raise IndexLockedError(f"{message}; try again when it has finished") from None
            if on_wait is not None:
                on_wait(f"{message}; waiting for it to finish")
            fcntl.flock(fd, fcntl.LOCK_EX)
        os.ftruncate(fd, 0)
        os.pwrite(fd, f"{os.getpid()}\n".encode(), 0)
        yield
    finally:
        os.close(fd)  # closing the descriptor releases the lock


def _holder(fd: int) -> str:
    """'process PID' from the lock file, or a vaguer phrase while the holder has not written it yet."""
    pid = os.pread(fd, 32, 0).decode("ascii", "replace").strip()
    return f"process {pid}" if pid.isdigit() else "another process"
