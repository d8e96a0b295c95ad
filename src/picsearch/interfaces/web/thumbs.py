"""Thumbnails made once per checked content and kept on disk."""

from __future__ import annotations

import hashlib
import threading
from pathlib import Path

from PIL import Image

from picsearch.data.files import CheckedFile, UncheckedFileError, content_digest
from picsearch.data.images import read_image
from picsearch.storage import atomic_file

THUMB_SIZE = 480  # longest side; grid cells are ~240 CSS px, so sharp on 2x screens
JPEG_QUALITY = 82


class ThumbnailCache:
    """JPEG previews in ``folder``, named by the source's content hash (and the thumbnail settings).

    A changed source has another hash, so another name (and ETag). A thumbnail is made from bytes
    whose hash is checked against that name, so no cached preview shows content that was not
    checked; it is written to a temporary name and renamed into place, so a reader never sees half of one.
    """

    def __init__(self, folder: Path, size: int = THUMB_SIZE, quality: int = JPEG_QUALITY) -> None:
        self.folder = Path(folder)
        self.size = size
        self.quality = quality
        self.generated = 0  # thumbnails made by this process (the cache hits are the rest)
        self._lock = threading.Lock()

    def key(self, source: CheckedFile) -> str:
        """The cache key of ``source``'s content (also its ETag)."""
        text = f"{source.identity.digest}|{self.size}|{self.quality}"
        return hashlib.sha256(text.encode()).hexdigest()[:32]

    def get(self, source: CheckedFile) -> tuple[Path, str]:
        """Return (thumbnail file, key) for ``source``, making the thumbnail on first use.

        Raises ``FileNotFoundError``, ``picsearch.data.images.ImageReadError``, or
        ``picsearch.data.files.UncheckedFileError`` when the bytes read are not the checked ones.
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

    def _write(self, source: CheckedFile, target: Path) -> None:
        data = source.path.read_bytes()
        if content_digest(data) != source.identity.digest:
            raise UncheckedFileError(f"{source.path}: changed while its thumbnail was being made")
        image = read_image(source.path, data=data)
        image.thumbnail((self.size, self.size), Image.Resampling.LANCZOS)
        with atomic_file(target) as out:
            image.save(out, format="JPEG", quality=self.quality, optimize=True, progressive=True)
