"""Photo files by name and by content: listing a folder safely, and the identity of the bytes read.

Listing never follows a path out of its folder and never stops on one bad name: a file name that
is not valid UTF-8, a symlink loop, a symlink leading out of the folder, or a sub-folder that cannot
be opened is named in ``skipped`` and the rest is listed. A file's :class:`FileIdentity` (content
hash, size, mtime and ctime) is what an index records; :class:`FileChecker` later refuses a file
whose bytes are no longer the ones recorded.
"""

from __future__ import annotations

import errno
import hashlib
import os
import stat
from dataclasses import dataclass, field
from pathlib import Path

from picsearch.data.images import IMAGE_SUFFIXES

BLOCK = 1 << 20


class UncheckedFileError(KeyError):
    """A file is not the one that was checked: changed, gone, or resolving out of its folder."""

    def __str__(self) -> str:
        return str(self.args[0]) if self.args else ""


@dataclass(frozen=True)
class FileIdentity:
    """What was checked about one file: ``digest`` of its bytes (blake2b-160, the embedding cache key),
    ``size``, ``mtime_ns`` and ``ctime_ns`` of the same open file. A stat of -1 means unknown."""

    digest: str
    size: int
    mtime_ns: int
    ctime_ns: int

    def same_stat(self, status: os.stat_result) -> bool:
        """The file's size and times are the recorded ones (ctime: a forged mtime still changes it)."""
        return (status.st_size, status.st_mtime_ns, status.st_ctime_ns) == (self.size, self.mtime_ns, self.ctime_ns)


@dataclass(frozen=True)
class CheckedFile:
    """A file that holds the bytes that were checked: its real path and their identity."""

    path: Path
    identity: FileIdentity


@dataclass
class Listing:
    """Files found (absolute, sorted by relative path) and ``(name, reason)`` of what was skipped."""

    files: list[Path] = field(default_factory=list)
    skipped: list[tuple[str, str]] = field(default_factory=list)


def content_digest(data: bytes) -> str:
    """The hash of some content: blake2b, 160 bits, hex (the embedding cache's key)."""
    return hashlib.blake2b(data, digest_size=20).hexdigest()


def identify(path: str | os.PathLike) -> FileIdentity:
    """Hash, size and times of a file, from one open: the stat describes the bytes hashed."""
    with open(path, "rb") as handle:
        status = os.fstat(handle.fileno())
        digest = hashlib.blake2b(digest_size=20)
        for block in iter(lambda: handle.read(BLOCK), b""):
            digest.update(block)
    return FileIdentity(digest.hexdigest(), status.st_size, status.st_mtime_ns, status.st_ctime_ns)


def display_name(path: str | os.PathLike) -> str:
    """A printable form of any file name: bytes that are not UTF-8 shown as ``\\xNN``."""
    return os.fsencode(path).decode("utf-8", "backslashreplace")


def scan_images(folder: str | os.PathLike, recursive: bool = False) -> Listing:
    """Image files in ``folder`` (and its sub-folders if ``recursive``), by suffix, never leaving it.

    A symlink is followed only while its target lies inside ``folder``; a folder reached twice (a
    symlink loop) is listed once and named in ``skipped``.
    """
    root = Path(folder)
    if not root.is_dir():
        raise FileNotFoundError(f"{root}: folder not found")
    real_root = Path(os.path.realpath(root))
    listing = Listing()
    _scan(root, root, real_root, recursive, {real_root}, listing)
    listing.files.sort(key=lambda path: path.relative_to(root).as_posix())
    return listing


def list_images(folder: str | os.PathLike) -> list[Path]:
    """Image files directly in ``folder``, sorted by name (see :func:`scan_images` for what is skipped)."""
    return scan_images(folder).files


def _scan(root: Path, folder: Path, real_root: Path, recursive: bool, seen: set[Path], listing: Listing) -> None:
    try:
        entries = sorted(os.scandir(folder), key=lambda entry: entry.name)
    except OSError as exc:
        listing.skipped.append((display_name(folder.relative_to(root)), f"cannot open folder ({exc.strerror})"))
        return
    for entry in entries:
        name = display_name(Path(entry.path).relative_to(root))
        reason, real = _resolve(entry, real_root)
        is_dir = real is not None and real.is_dir()
        wanted = is_dir or Path(entry.name).suffix.lower() in IMAGE_SUFFIXES
        if reason is None and wanted and not _utf8(entry.name):
            reason = "file name is not valid UTF-8; rename it"
        if reason is not None and (wanted or entry.is_symlink()):
            listing.skipped.append((name, reason))
        elif reason is None and is_dir and recursive:
            if real in seen:
                listing.skipped.append((name, "symlink loop: this folder is already being listed"))
            else:
                _scan(root, Path(entry.path), real_root, recursive, seen | {real}, listing)
        elif reason is None and wanted and not is_dir and real is not None and real.is_file():
            listing.files.append(Path(entry.path))


def _resolve(entry: os.DirEntry, real_root: Path) -> tuple[str | None, Path | None]:
    """(reason to skip, real path) of a folder entry: symlinks must resolve, and stay inside the folder."""
    try:
        real = Path(os.path.realpath(entry.path, strict=True))
    except OSError as exc:
        if exc.errno == errno.ELOOP:
            return "symlink loop", None
        return (f"broken symlink ({exc.strerror})" if entry.is_symlink() else f"cannot read ({exc.strerror})"), None
    if not real.is_relative_to(real_root):
        return "symlink leads out of the folder; not followed", None
    return None, real


def _utf8(name: str) -> bool:
    try:
        name.encode("utf-8")
    except UnicodeEncodeError:
        return False
    return True


class FileChecker:
    """Serves a file under ``root`` only while it holds the bytes recorded in its :class:`FileIdentity`.

    Size, mtime and ctime are compared first; when they differ the file is hashed, and a file with the
    recorded hash (touched, copied back) is accepted and remembered, so it is hashed once.
    """

    def __init__(self, root: str | os.PathLike) -> None:
        self.root = Path(os.path.realpath(root))
        self._accepted: dict[str, tuple[int, int, int]] = {}

    def check(self, relative: str, expected: FileIdentity) -> CheckedFile:
        """``root/relative`` by its real path; :class:`UncheckedFileError` naming the file and why, else."""
        try:
            real = Path(os.path.realpath(self.root / relative, strict=True))
            status = real.stat()
        except OSError as exc:
            raise UncheckedFileError(f"{display_name(relative)}: cannot be read ({exc.strerror})") from exc
        if not real.is_relative_to(self.root):
            raise UncheckedFileError(f"{display_name(relative)}: resolves out of the gallery; refused")
        if not stat.S_ISREG(status.st_mode):
            raise UncheckedFileError(f"{display_name(relative)}: not a regular file; refused")
        now = (status.st_size, status.st_mtime_ns, status.st_ctime_ns)
        if expected.same_stat(status) or self._accepted.get(relative) == now:
            return CheckedFile(real, expected)
        if status.st_size == expected.size or expected.size < 0:
            try:
                current = identify(real)
            except OSError as exc:
                raise UncheckedFileError(f"{display_name(relative)}: cannot be read ({exc.strerror})") from exc
            if current.digest == expected.digest:
                self._accepted[relative] = (current.size, current.mtime_ns, current.ctime_ns)
                return CheckedFile(real, expected)
        raise UncheckedFileError(
            f"{display_name(relative)}: changed since it was indexed, so it is unchecked; run `picsearch index` again"
        )
