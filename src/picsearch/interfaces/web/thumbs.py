"""Thumbnails made once per source file version and kept on disk."""

from __future__ import annotations

import hashlib
import threading
from pathlib import Path

from PIL import Image

from picsearch.data.images import read_image
from picsearch.storage import atomic_file

THUMB_SIZE = 480  # longest side; grid cells are ~240 CSS px, so sharp on 2x screens
JPEG_QUALITY = 82


class ThumbnailCache:
    """JPEG previews in ``folder``, named by a hash of the source's path, size and mtime.

    A changed source gets a new name (and a new ETag); a file is written to a temporary
    name and renamed into place, so a reader never sees half a thumbnail.
    """

    def __init__(self, folder: Path, size: int = THUMB_SIZE, quality: int = JPEG_QUALITY) -> None:
        self.folder = Path(folder)
        self.size = size
        self.quality = quality
        self.generated = 0  # thumbnails made by this process (the cache hits are the rest)
        self._lock = threading.Lock()

    def key(self, source: Path) -> str:
        """The cache key of the current version of ``source`` (also its ETag)."""
        stat = source.stat()
        text = f"{source.resolve()}|{stat.st_size}|{stat.st_mtime_ns}|{self.size}|{self.quality}"
        return hashlib.sha256(text.encode()).hexdigest()[:32]

    def get(self, source: Path) -> tuple[Path, str]:
        """Return (thumbnail file, key) for ``source``, making the thumbnail on first use.

        Raises ``FileNotFoundError`` or ``picsearch.data.images.ImageReadError``.
        """
        key = self.key(source)
        target = self.folder / f"{key}.jpg"
        if target.is_file():
            return target, key
        with self._lock:  # one writer: concurrent first requests make the thumbnail once
            if not target.is_file():
                self._write(source, target)
                self.generated += 1
        return target, key

    def _write(self, source: Path, target: Path) -> None:
        image = read_image(source)
        image.thumbnail((self.size, self.size), Image.Resampling.LANCZOS)
        with atomic_file(target) as out:
            image.save(out, format="JPEG", quality=self.quality, optimize=True, progressive=True)
