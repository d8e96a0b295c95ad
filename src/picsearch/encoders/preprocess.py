"""Image preprocessing with Pillow and numpy, matching each model's published recipe (no torchvision)."""

from __future__ import annotations

import numpy as np
from PIL import Image


def resize_center_crop(image: Image.Image, resize: int, crop: int, resample: int = Image.BICUBIC) -> Image.Image:
    """Resize the shorter side to ``resize`` then take the central ``crop`` x ``crop`` square."""
    width, height = image.size
    scale = resize / min(width, height)
    new_size = (max(crop, round(width * scale)), max(crop, round(height * scale)))
    image = image.resize(new_size, resample)
    left = (new_size[0] - crop) // 2
    top = (new_size[1] - crop) // 2
    return image.crop((left, top, left + crop, top + crop))


def to_chw(image: Image.Image, mean: tuple[float, float, float], std: tuple[float, float, float]) -> np.ndarray:
    """RGB image -> normalized float32 array (3, H, W); ``mean``/``std`` are on the 0..1 scale."""
    array = np.asarray(image, dtype=np.float32) / 255.0
    array = (array - np.asarray(mean, dtype=np.float32)) / np.asarray(std, dtype=np.float32)
    return np.ascontiguousarray(array.transpose(2, 0, 1))
