"""Read any photo the same way: EXIF orientation applied, RGB, guarded against decompression bombs."""

from __future__ import annotations

import io
import os
from pathlib import Path

from PIL import Image, ImageOps, UnidentifiedImageError

MAX_PIXELS = 64_000_000  # ~8000x8000; Flickr8k photos are ~0.2 MP
MAX_ASPECT = 20.0  # longer side / shorter side; panoramas reach ~10:1, no photo 20:1
MAX_DECODED_BYTES = 256 << 20  # what one decoded image may take in memory, after JPEG draft reduction
DRAFT_SIDE = 1024  # large JPEGs decode at 1/2, 1/4 or 1/8 scale while both sides stay >= this
IMAGE_SUFFIXES = frozenset({".jpg", ".jpeg", ".png", ".webp", ".bmp", ".gif", ".tif", ".tiff"})
BYTES_PER_PIXEL = {"1": 1, "L": 1, "P": 1, "I;16": 2, "I;16B": 2, "I;16L": 2, "LA": 2, "PA": 2}  # else 4


class ImageReadError(OSError):
    """One image could not be read; the message names the file and the reason."""

    def __init__(self, path: str | os.PathLike, reason: str) -> None:
        super().__init__(f"{os.fsencode(path).decode('utf-8', 'backslashreplace')}: {reason}")
        self.path = Path(path)
        self.reason = reason


def read_image(path: str | os.PathLike, max_pixels: int = MAX_PIXELS, data: bytes | None = None) -> Image.Image:
    """Open ``path`` (or decode ``data``, its bytes, naming ``path`` in errors) as RGB with EXIF orientation.

    Handles grayscale, palette, alpha (composited on white), CMYK and 16-bit images. Large JPEGs
    are decoded at a reduced scale (no side below :data:`DRAFT_SIDE`). Raises :class:`ImageReadError`
    for missing, corrupt, truncated or oversized files, for shapes no photo has (beyond
    :data:`MAX_ASPECT`) and for images whose decoding would take more than :data:`MAX_DECODED_BYTES`.
    """
    path = Path(path)
    try:
        with Image.open(path if data is None else io.BytesIO(data)) as image:
            _check_shape(path, image, max_pixels)
            image.draft("RGB", (DRAFT_SIDE, DRAFT_SIDE))  # JPEG only: DCT scaling, a no-op otherwise
            _check_memory(path, image)
            image.load()
            image = ImageOps.exif_transpose(image)
            return _to_rgb(image)
    except ImageReadError:
        raise
    except (UnidentifiedImageError, Image.DecompressionBombError) as exc:
        raise ImageReadError(path, f"not a decodable image ({exc})") from exc
    except (OSError, ValueError, SyntaxError) as exc:
        raise ImageReadError(path, f"{type(exc).__name__}: {exc}") from exc


def _check_shape(path: Path, image: Image.Image, max_pixels: int) -> None:
    width, height = image.size
    if width * height > max_pixels:
        raise ImageReadError(path, f"{width}x{height} pixels exceeds the limit of {max_pixels}")
    if min(width, height) < 1 or max(width, height) / min(width, height) > MAX_ASPECT:
        raise ImageReadError(
            path, f"{width}x{height} pixels: aspect ratio beyond {MAX_ASPECT:g}:1, which no photo has; skipped"
        )


def _check_memory(path: Path, image: Image.Image) -> None:
    """Refuse before decoding what would take more than MAX_DECODED_BYTES (and the RGB copy after it)."""
    width, height = image.size
    needed = width * height * (BYTES_PER_PIXEL.get(image.mode, 4) + 4)
    if needed > MAX_DECODED_BYTES:
        raise ImageReadError(
            path, f"{width}x{height} {image.mode} needs {needed >> 20} MiB to decode, over the {MAX_DECODED_BYTES >> 20} MiB limit"
        )


def _to_rgb(image: Image.Image) -> Image.Image:
    if image.mode == "RGB":
        return image
    if image.mode in ("I;16", "I;16B", "I;16L", "I"):
        # 16/32-bit grayscale: scale to 8 bits instead of clipping to white.
        image = image.point(lambda value: value * (255 / 65535)).convert("L")
    if image.mode == "P":
        image = image.convert("RGBA")
    if image.mode in ("RGBA", "LA", "PA"):
        background = Image.new("RGBA", image.size, (255, 255, 255, 255))
        return Image.alpha_composite(background, image.convert("RGBA")).convert("RGB")
    return image.convert("RGB")
