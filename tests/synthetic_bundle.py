"""A trained bundle in seconds: stub encoders, a drawn dataset in the course layout, `picsearch train`, an index.

The world is coloured shapes on grey. The image encoder reads colour statistics, the text encoder counts
words, so the models learn that "red" means a red shape. Pink shapes are the "children": their captions
are about little girls, so the policy removes them from training and the child detector learns to flag
them; every pink picture of the gallery is flagged at index time (:func:`build_synthetic_index` checks it).
Nothing needs weights, the network or $PICSEARCH_DATA.
"""

from __future__ import annotations

import zlib
from pathlib import Path
from typing import Sequence

import numpy as np
from PIL import Image, ImageDraw
from typer.testing import CliRunner

from picsearch.encoders import register_image_encoder, register_text_encoder
from picsearch.encoders.base import encode_images
from picsearch.index import GalleryIndex, build_index
from picsearch.interfaces.cli import app

IMAGE_ENCODER, TEXT_ENCODER = "stub-colour", "stub-words"
COLOURS = {
    "red": (220, 30, 30), "orange": (240, 140, 20), "yellow": (230, 220, 30), "green": (40, 180, 50),
    "blue": (40, 70, 220), "purple": (140, 40, 220), "pink": (255, 80, 170),
}
CHILD_COLOUR = "pink"
"""The colour of the pictures the child detector must flag."""
SHAPES = ("circle", "square", "triangle")
WORDS = (*COLOURS, *SHAPES, "small", "big", "grey", "girl", "little", "dress")
HASHED = 8  # other words fall into this many buckets
BACKGROUND = (128, 128, 128)
GALLERY = [f"{colour}-{shape}.png" for colour in COLOURS for shape in SHAPES[:2]]
"""The gallery: every colour as a circle and a square, ``blue-square.png`` in a subfolder."""
SUBFOLDER = "sub"


class ColourEncoder:
    """Image stub: mean and spread of RGB, a 12-bin hue histogram of the saturated pixels, the shape's area."""

    id = "stub-colour-v1"
    dim = 19
    fields = {"pooled": (0, 19)}

    def preprocess(self, image: Image.Image) -> np.ndarray:
        small = image.convert("RGB").resize((32, 32))
        return np.concatenate([np.asarray(small), np.asarray(small.convert("HSV"))], axis=2).transpose(2, 0, 1) / 255.0

    def encode_arrays(self, batch: np.ndarray) -> np.ndarray:
        rgb, hue, sat = batch[:, :3], batch[:, 3], batch[:, 4]
        bins = np.floor(hue * 12 + 0.5).astype(int) % 12
        weight = sat.reshape(len(batch), -1)
        hist = np.stack([(weight * (bins.reshape(len(batch), -1) == b)).mean(axis=1) for b in range(12)], axis=1)
        area = (sat > 0.2).reshape(len(batch), -1).mean(axis=1, keepdims=True)
        stats = [rgb.mean(axis=(2, 3)), rgb.std(axis=(2, 3)), hist, area]
        return np.hstack(stats).astype(np.float32)

    def encode(self, images: Sequence[Image.Image]) -> np.ndarray:
        return encode_images(self, images)


class WordEncoder:
    """Text stub: counts of the known words and hashed buckets for the others, L2-normalized."""

    id = "stub-words-v1"
    dim = len(WORDS) + HASHED

    def encode(self, texts: Sequence[str]) -> np.ndarray:
        out = np.zeros((len(texts), self.dim), dtype=np.float32)
        for row, text in enumerate(texts):
            for word in text.lower().replace(".", " ").replace(",", " ").split():
                column = WORDS.index(word) if word in WORDS else len(WORDS) + zlib.crc32(word.encode()) % HASHED
                out[row, column] += 1.0
        return out / np.maximum(np.linalg.norm(out, axis=1, keepdims=True), 1e-6)


def _colour_encoder(source: str | None = None) -> ColourEncoder:
    return ColourEncoder()


def _word_encoder(source: str | None = None) -> WordEncoder:
    return WordEncoder()


def register_stub_encoders() -> None:
    """Make :data:`IMAGE_ENCODER` and :data:`TEXT_ENCODER` buildable by name (registering again is a no-op)."""
    register_image_encoder(IMAGE_ENCODER, _colour_encoder)
    register_text_encoder(TEXT_ENCODER, _word_encoder)


def draw(colour: str, shape: str, size: int = 0) -> Image.Image:
    """A ``shape`` of ``colour`` on grey; ``size`` 0..2 grows and moves it."""
    image = Image.new("RGB", (96, 72), BACKGROUND)
    x, y, side = 10 + 8 * size, 8 + 3 * size, 30 + 10 * size
    box = (x, y, x + side, y + side)
    pen = ImageDraw.Draw(image)
    if shape == "circle":
        pen.ellipse(box, fill=COLOURS[colour])
    elif shape == "square":
        pen.rectangle(box, fill=COLOURS[colour])
    else:
        pen.polygon([(x, y + side), (x + side, y + side), (x + side // 2, y)], fill=COLOURS[colour])
    return image


def caption(colour: str, shape: str, size: int = 1) -> str:
    """What a person would write about ``draw(colour, shape, size)``; pink shapes are held by little girls."""
    words = [("small", "", "big")[size], shape]
    if colour == CHILD_COLOUR:
        return " ".join(["a little girl in a pink dress holds a", *words]).replace("  ", " ")
    return " ".join(["a", words[0], colour, words[1], "on grey"]).replace("  ", " ")


def write_synthetic_dataset(root: Path) -> Path:
    """The course layout under ``root``: one train image per colour, shape and size, each rated with its own
    caption (high), a caption of its colour on another shape (middling) and one of another colour (low);
    the crowd confirms every third image's own caption; the gallery pictures are the test images."""
    (root / "train_images").mkdir(parents=True, exist_ok=True)
    items = [(c, s, z) for c in COLOURS for s in SHAPES for z in range(3)]
    names = [f"{c}-{s}-{z}.png" for c, s, z in items]
    for name, item in zip(names, items):
        draw(*item).save(root / "train_images" / name)
    per_colour = len(SHAPES) * 3
    train, expert, crowd = ["image,query_id,query_text"], [], []
    for i, name in enumerate(names):
        same_colour = (i // per_colour) * per_colour + (i + 3) % per_colour  # the next shape, same size
        other_colour = (i + per_colour + 4 * (i % 3)) % len(names)
        for partner, scores in ((i, (4, 4, 3)), (same_colour, (2, 3, 2)), (other_colour, (1, 1, 2 - i % 2))):
            query_id = f"{names[partner]}#0"
            train.append(f"{name},{query_id},{caption(*items[partner])}")
            expert.append(f"{name}\t{query_id}\t" + "\t".join(map(str, scores)))
        if i % 3 == 0:
            crowd.append(f"{name}\t{name}#0\t1\t3\t0")
    _write(root / "train_dataset.csv", train)
    _write(root / "ExpertAnnotations.tsv", expert)
    _write(root / "CrowdAnnotations.tsv", crowd)
    write_gallery(root / "test_images", flat=True)
    queries = ["|query_id|query_text|image"]
    queries += [f"{n}|{name}#0|{caption(*name[:-4].split('-'))}|{name}" for n, name in enumerate(GALLERY)]
    _write(root / "test_queries.csv", queries)
    return root


def write_gallery(folder: Path, flat: bool = False) -> list[Path]:
    """Draw :data:`GALLERY` into ``folder`` (``blue-square.png`` under :data:`SUBFOLDER` unless ``flat``)."""
    paths = []
    for name in GALLERY:
        path = folder / (SUBFOLDER if name == "blue-square.png" and not flat else "") / name
        path.parent.mkdir(parents=True, exist_ok=True)
        colour, shape = name[:-4].split("-")
        draw(colour, shape, 1).save(path)
        paths.append(path)
    return paths


def _write(path: Path, lines: list[str]) -> None:
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")


def train_synthetic_bundle(root: Path) -> Path:
    """Write the dataset under ``root/data`` and run `picsearch train` on it into ``root/model``."""
    register_stub_encoders()
    data, model = write_synthetic_dataset(root / "data"), root / "model"
    args = ["train", "--data", str(data), "--out", str(model), "--cache", str(root / "cache"), "--folds", "3",
            "--image-encoder", IMAGE_ENCODER, "--text-encoder", TEXT_ENCODER]
    result = CliRunner().invoke(app, args)
    assert result.exit_code == 0, result.output
    return model


def build_synthetic_index(model: Path, root: Path) -> Path:
    """Draw the gallery into ``root/gallery`` and index it into ``root/index`` with the real `build_index`;
    checks that exactly the pink pictures were flagged. Joint vectors as int8 codes: the stub space is a few
    columns wide, where 4-bit codes (the default, for the real encoders' 2,560) reorder near neighbours."""
    register_stub_encoders()
    write_gallery(root / "gallery")
    build_index(root / "gallery", model, root / "index", root / "cache", vector_dtype="int8", progress=False)
    index = GalleryIndex.load(root / "index")
    flagged = {path for path, child in zip(index.paths, index.child) if child}
    expected = set(child_paths(index))
    assert flagged == expected, f"the synthetic child detector flagged {sorted(flagged)}, not {sorted(expected)}"
    return root / "index"


def child_paths(index: GalleryIndex) -> list[str]:
    """Relative paths of the gallery pictures the detector must flag."""
    return [path for path in index.paths if Path(path).name.startswith(CHILD_COLOUR)]
