"""The one image reader: orientation, colour modes, pixel limit, clear per-file errors."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from picsearch.data.files import list_images
from picsearch.data.images import ImageReadError, read_image

RED, BLUE = (255, 0, 0), (0, 0, 255)


def _left_red_right_blue(width: int = 40, height: int = 20) -> Image.Image:
    image = Image.new("RGB", (width, height), BLUE)
    image.paste(RED, (0, 0, width // 2, height))
    return image


def test_exif_orientation_is_applied(tmp_path: Path) -> None:
    path = tmp_path / "rotated.jpg"
    exif = Image.Exif()
    exif[0x0112] = 6  # stored sideways: display needs a 90 degree clockwise turn
    _left_red_right_blue().save(path, "JPEG", exif=exif, quality=95)
    image = read_image(path)
    assert image.size == (20, 40)
    pixels = np.asarray(image).astype(int)
    assert np.abs(pixels[5, 10] - RED).max() < 40  # the left half is now on top
    assert np.abs(pixels[35, 10] - BLUE).max() < 40


@pytest.mark.parametrize(
    ("mode", "suffix"), [("L", "png"), ("LA", "png"), ("P", "png"), ("RGBA", "png"), ("CMYK", "jpg")]
)
def test_modes_become_rgb(tmp_path: Path, mode: str, suffix: str) -> None:
    path = tmp_path / f"image.{suffix}"
    _left_red_right_blue().convert(mode).save(path)
    assert Image.open(path).mode == mode  # the file really is stored in that mode
    image = read_image(path)
    assert image.mode == "RGB" and image.size == (40, 20)
    red = np.asarray(image)[0, 0].astype(int)
    if mode.startswith("L"):
        assert red[0] == red[1] == red[2]
    else:
        assert np.abs(red - RED).max() < 40


def test_alpha_is_composited_on_white(tmp_path: Path) -> None:
    path = tmp_path / "alpha.png"
    image = Image.new("RGBA", (4, 4), (255, 0, 0, 255))
    image.putpixel((0, 0), (0, 0, 0, 0))
    image.save(path)
    pixels = np.asarray(read_image(path))
    assert tuple(pixels[0, 0]) == (255, 255, 255)
    assert tuple(pixels[1, 1]) == (255, 0, 0)


def test_16_bit_is_scaled_not_clipped(tmp_path: Path) -> None:
    path = tmp_path / "deep.png"
    Image.fromarray(np.array([[0, 32768, 65535]], dtype=np.uint16)).save(path)
    assert Image.open(path).mode.startswith("I")
    values = np.asarray(read_image(path))[0, :, 0].tolist()
    assert values[0] == 0 and 126 <= values[1] <= 129 and values[2] == 255


def test_palette_keeps_colours(tmp_path: Path) -> None:
    path = tmp_path / "palette.png"
    _left_red_right_blue().convert("P").save(path)
    pixels = np.asarray(read_image(path))
    assert tuple(pixels[0, 0]) == RED and tuple(pixels[0, 39]) == BLUE


def test_pixel_limit(tmp_path: Path) -> None:
    path = tmp_path / "big.png"
    Image.new("RGB", (100, 100)).save(path)
    with pytest.raises(ImageReadError, match=r"big\.png: 100x100 pixels exceeds the limit of 5000"):
        read_image(path, max_pixels=5000)
    assert read_image(path, max_pixels=10_000).size == (100, 100)


def test_corrupt_truncated_and_missing_files_name_the_file(tmp_path: Path) -> None:
    junk = tmp_path / "junk.jpg"
    junk.write_bytes(b"definitely not a picture")
    with pytest.raises(ImageReadError, match=r"junk\.jpg: not a decodable image") as info:
        read_image(junk)
    assert info.value.path == junk
    good = tmp_path / "cut.jpg"
    Image.effect_noise((64, 64), 50).convert("RGB").save(good, "JPEG")
    good.write_bytes(good.read_bytes()[:400])
    with pytest.raises(ImageReadError, match=r"cut\.jpg: "):
        read_image(good)
    with pytest.raises(ImageReadError, match=r"absent\.jpg: "):
        read_image(tmp_path / "absent.jpg")


def test_list_images_only_images_sorted(tmp_path: Path) -> None:
    for name in ("b.jpg", "a.PNG", "notes.txt"):
        (tmp_path / name).write_bytes(b"x")
    (tmp_path / "sub.jpg").mkdir()
    assert [p.name for p in list_images(tmp_path)] == ["a.PNG", "b.jpg"]
