"""Read any photo the same way: EXIF orientation applied, RGB, guarded against decompression bombs."""

from __future__ import annotations

import os
from pathlib import Path

from PIL import Image, ImageOps, UnidentifiedImageError

MAX_PIXELS = 64_000_000  # ~8000x8000; Flickr8k photos are ~0.2 MP
IMAGE_SUFFIXES = frozenset({".jpg", ".jpeg", ".png", ".webp", ".bmp", ".gif", ".tif", ".tiff"})


class ImageReadError(OSError):
    """One image could not be read; the message names the file and the reason."""

    def __init__(self, path: str | os.PathLike, reason: str) -> None:
        super().__init__(f"{path}: {reason}")
        self.path = Path(path)
        self.reason = reason


def read_image(path: str | os.PathLike, max_pixels: int = MAX_PIXELS) -> Image.Image:
    """Open ``path`` as an RGB image with EXIF orientation applied.

    Handles grayscale, palette, alpha (composited on white), CMYK and 16-bit images.
    Raises :class:`ImageReadError` for missing, corrupt, truncated or oversized files.
    """
    path = Path(path)
    try:
        with Image.open(path) as image:
            width, height = image.size
            if width * height > max_pixels:
                raise ImageReadError(path, f"{width}x{height} pixels exceeds the limit of {max_pixels}")
            image.load()
            image = ImageOps.exif_transpose(image)
            return _to_rgb(image)
    except ImageReadError:
        raise
    except (UnidentifiedImageError, Image.DecompressionBombError) as exc:
        raise ImageReadError(path, f"not a decodable image ({exc})") from exc
    except (OSError, ValueError, SyntaxError) as exc:
        raise ImageReadError(path, f"{type(exc).__name__}: {exc}") from exc


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


def list_images(folder: str | os.PathLike) -> list[Path]:
    """Image files directly in ``folder``, sorted by name."""
    return sorted(p for p in Path(folder).iterdir() if p.is_file() and p.suffix.lower() in IMAGE_SUFFIXES)
