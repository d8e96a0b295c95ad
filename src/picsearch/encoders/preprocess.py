"""Image preprocessing with Pillow and numpy, matching each model's published recipe (no torchvision)."""

from __future__ import annotations

import numpy as np
from PIL import Image


def resize_center_crop(image: Image.Image, resize: int, crop: int, resample: int = Image.BICUBIC) -> Image.Image:
    """Resize the shorter side to ``resize`` then take the central ``crop`` x ``crop`` square.

    Sizes and offsets are rounded as Hugging Face image processors round them (longer side
    truncated, offsets floored), so the result matches their ``shortest_edge`` + ``crop_size`` recipe.
    """
    width, height = image.size
    short, long = min(width, height), max(width, height)
    new_long = int(resize * long / short)
    new_size = (resize, new_long) if width <= height else (new_long, resize)
    image = image.resize(new_size, resample)
    left = (new_size[0] - crop) // 2
    top = (new_size[1] - crop) // 2
    return image.crop((left, top, left + crop, top + crop))


def center_crop_resize(image: Image.Image, size: int, crop_padding: int, resample: int = Image.BICUBIC) -> Image.Image:
    """Google's EfficientNet eval crop: a central square of ``size / (size + crop_padding)`` of the
    shorter side, cut from the original image and resized to ``size`` x ``size``."""
    width, height = image.size
    side = int(size / (size + crop_padding) * min(width, height))
    top = (height - side + 1) // 2
    left = (width - side + 1) // 2
    return image.resize((size, size), resample, box=(left, top, left + side, top + side))


def square_tiles(image: Image.Image, size: int, count: int = 3, resample: int = Image.BICUBIC) -> list[Image.Image]:
    """``count`` squares of the shorter side, evenly spaced along the longer side from one end to the other
    (so together they cover the whole image), each resized to ``size`` x ``size``."""
    width, height = image.size
    side = min(width, height)
    offsets = np.linspace(0, max(width, height) - side, count).round().astype(int)
    boxes = [(o, 0, o + side, side) if width >= height else (0, o, side, o + side) for o in offsets]
    return [image.resize((size, size), resample, box=box) for box in boxes]


def grid_squares(
    image: Image.Image, size: int, rows: int, columns: int, fraction: float, resample: int = Image.BICUBIC
) -> list[Image.Image]:
    """A grid of ``rows`` (across the shorter side) x ``columns`` (along the longer side) squares of ``fraction``
    of the shorter side, evenly spaced from edge to edge (so that, large enough, together they cover the
    photo), row by row, each resized to ``size`` x ``size``: views zoomed in ``1 / fraction`` times."""
    width, height = image.size
    side = min(width, height) * fraction
    boxes = []
    for across in np.linspace(0, min(width, height) - side, rows):
        for along in np.linspace(0, max(width, height) - side, columns):
            x, y = (along, across) if width >= height else (across, along)
            boxes.append((x, y, x + side, y + side))
    return [image.resize((size, size), resample, box=box) for box in boxes]


def to_chw(image: Image.Image, mean: tuple[float, float, float], std: tuple[float, float, float]) -> np.ndarray:
    """RGB image -> normalized float32 array (3, H, W); ``mean``/``std`` are on the 0..1 scale."""
    array = np.asarray(image, dtype=np.float32) / 255.0
    array = (array - np.asarray(mean, dtype=np.float32)) / np.asarray(std, dtype=np.float32)
    return np.ascontiguousarray(array.transpose(2, 0, 1))
