"""Encoder registry, preprocessing geometry, and the offline encoders on real photos."""

from __future__ import annotations

import re
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from picsearch.data import load_dataset
from picsearch.data.images import read_image
from picsearch.data.tables import caption_image
from picsearch.encoders import (
    query_encoder_name,
    IMAGE_ENCODERS,
    TEXT_ENCODERS,
    ImageEncoder,
    TextEncoder,
    get_image_encoder,
    get_text_encoder,
    register_image_encoder,
    register_text_encoder,
)
from picsearch.encoders.preprocess import center_crop_resize, grid_squares, resize_center_crop, square_tiles

DOG_CLASSES = slice(151, 281)  # ImageNet-1k: dog breeds, wolves, wild dogs, foxes
CAT_CLASSES = slice(281, 286)  # ImageNet-1k: domestic cats


def test_registry_names() -> None:
    assert {"effnet-lite0", "effnet-lite2", "effnet-lite0+lite2", "effnet-lite0+lite2+zoom", "clip", "resnet18"} <= set(
        IMAGE_ENCODERS
    )
    assert {"mpnet", "minilm", "clip", "bert"} <= set(TEXT_ENCODERS)
    assert isinstance(get_image_encoder("effnet-lite0"), ImageEncoder)  # weights load lazily: cheap
    assert isinstance(get_text_encoder("minilm"), TextEncoder)
    with pytest.raises(KeyError, match="unknown image encoder 'nope'.*effnet-lite0"):
        get_image_encoder("nope")
    with pytest.raises(KeyError, match="unknown text encoder 'effnet-lite0'.*minilm"):
        get_text_encoder("effnet-lite0")
    with pytest.raises(ValueError, match="takes as source only a runtime, onnx or torch"):
        get_image_encoder("effnet-lite0:/some/folder")
    assert get_image_encoder("effnet-lite0+lite2:torch").large.backend == "torch"
    assert get_text_encoder("mpnet:onnx").backend == "onnx" and get_text_encoder("mpnet:onnx-int8").backend == "onnx-int8"
    assert [query_encoder_name(n) for n in ("mpnet", "mpnet:torch", "minilm")] == ["mpnet:onnx-int8", "mpnet:torch", "minilm"]
    assert get_text_encoder("minilm:onnx").backend == "onnx" and get_text_encoder("minilm:torch").backend == "torch"
    with pytest.raises(ValueError, match="'minilm' takes as source only a runtime, onnx or torch"):
        get_text_encoder("minilm:onnx-int8")  # its int8 graph was never measured


def test_registered_encoders_are_built_by_name(monkeypatch: pytest.MonkeyPatch) -> None:
    from synthetic_bundle import ColourEncoder, WordEncoder

    monkeypatch.setattr("picsearch.encoders.IMAGE_ENCODERS", dict(IMAGE_ENCODERS))
    monkeypatch.setattr("picsearch.encoders.TEXT_ENCODERS", dict(TEXT_ENCODERS))
    sources = []
    register_image_encoder("test-colour", lambda source=None: sources.append(source) or ColourEncoder())
    def words(source: str | None = None) -> WordEncoder:
        return WordEncoder()

    register_text_encoder("test-words", words)
    register_text_encoder("test-words", words)  # the same factory again: nothing changes
    assert isinstance(get_image_encoder("test-colour:somewhere"), ColourEncoder) and sources == ["somewhere"]
    assert isinstance(get_text_encoder("test-words"), WordEncoder)
    with pytest.raises(ValueError, match="'effnet-lite0' is already registered"):
        register_image_encoder("effnet-lite0", lambda source=None: ColourEncoder())
    with pytest.raises(ValueError, match="'test-words' is already registered"):
        register_text_encoder("test-words", lambda source=None: WordEncoder())
    with pytest.raises(ValueError, match="without ':'"):
        register_text_encoder("a:b", lambda source=None: WordEncoder())


def test_effnet_ids_and_fields_differ_by_variant() -> None:
    lite0, lite2 = get_image_encoder("effnet-lite0"), get_image_encoder("effnet-lite2")
    assert lite0.id != lite2.id
    assert lite0.fields == lite2.fields == {"pooled": (0, 1280), "probs": (1280, 2280)}
    assert lite0.preprocess(Image.new("RGB", (500, 375))).shape == (3, 224, 224)
    assert lite2.preprocess(Image.new("RGB", (375, 500))).shape == (3, 260, 260)


def test_center_crop_resize_keeps_the_padded_centre() -> None:
    # 300x200: the crop is int(224/256*200) = 175 px wide, from x = 63 to 238.
    image = Image.new("RGB", (300, 200), (0, 0, 255))
    image.paste((255, 0, 0), (60, 0, 241, 200))
    out = np.asarray(center_crop_resize(image, 224, 32))
    assert out.shape == (224, 224, 3)
    assert out[:, :, 0].min() >= 250 and out[:, :, 2].max() <= 5


@pytest.mark.parametrize("size", [(400, 200), (200, 400)])
def test_square_tiles_cover_the_whole_image_end_to_end(size: tuple[int, int]) -> None:
    # a 400-long side in three 200-squares: offsets 0, 100, 200; each tile is half red, half blue
    array = np.zeros((size[1], size[0], 3), dtype=np.uint8)
    for start in range(0, 400, 100):
        band = (slice(None), slice(start, start + 100)) if size[0] > size[1] else (slice(start, start + 100),)
        array[band] = (255, 0, 0) if start % 200 == 0 else (0, 0, 255)
    tiles = square_tiles(Image.fromarray(array), 50, 3, resample=Image.NEAREST)
    assert [tile.size for tile in tiles] == [(50, 50)] * 3
    first, middle, last = (np.asarray(tile)[..., 0].astype(int) for tile in tiles)
    axis = 1 if size[0] > size[1] else 0
    halves = lambda a: (np.take(a, range(25), axis).mean(), np.take(a, range(25, 50), axis).mean())  # noqa: E731
    assert halves(first) == (255, 0) and halves(middle) == (0, 255) and halves(last) == (255, 0)


def test_square_tiles_of_a_square_image_are_the_image() -> None:
    image = Image.fromarray(np.random.default_rng(0).integers(0, 256, (64, 64, 3), dtype=np.uint8))
    tiles = square_tiles(image, 64, 3)
    assert all(np.array_equal(np.asarray(tile), np.asarray(image)) for tile in tiles)


@pytest.mark.parametrize("portrait", [False, True])
def test_grid_squares_are_the_corners_zoomed_in(portrait: bool) -> None:
    # a 100 x 60 photo: squares of 0.5 x 60 = 30 px, 2 rows x 3 columns at x 0, 35, 70 and y 0, 30
    array = np.zeros((60, 100, 3), dtype=np.uint8)
    array[:30, :30], array[30:, 70:], array[:30, 35:65] = 255, 128, 64
    image = Image.fromarray(array.transpose(1, 0, 2) if portrait else array)
    views = grid_squares(image, 15, 2, 3, 0.5, resample=Image.NEAREST)
    assert len(views) == 6 and all(view.size == (15, 15) for view in views)
    levels = [np.unique(np.asarray(view)).tolist() for view in views]
    assert levels[0] == [255] and levels[1] == [64] and levels[-1] == [128]  # first row, then the second
    assert levels[3] == [0]  # the bottom-left square (top-right for the portrait) is empty


def test_zoomed_encoder_keeps_the_tiles_and_adds_the_zoomed_views_as_a_second_pooled_block() -> None:
    plain, zoomed = get_image_encoder("effnet-lite0+lite2"), get_image_encoder("effnet-lite0+lite2+zoom")
    assert zoomed.id != plain.id and zoomed.dim == 2 * 2560 + 1000
    assert zoomed.fields == {"pooled": (0, 5120), "probs": (5120, 6120)}
    photo = Image.fromarray(np.random.default_rng(0).integers(0, 256, (300, 400, 3), dtype=np.uint8))
    views = zoomed.preprocess(photo)
    assert views.shape == (7, 3, 260, 260)
    np.testing.assert_array_equal(views[:3], plain.preprocess(photo))  # the same tiles first
    per_view = np.arange(7)[:, None] + np.zeros((1, plain.dim), dtype=np.float32)  # view v's vector is all v
    zoomed.encode_views = lambda batch: per_view[: len(batch)]
    vector = zoomed.encode_arrays(views[None])[0]
    assert vector.shape == (6120,)
    np.testing.assert_array_equal(vector[:2560], 1.0)  # mean of the tiles 0, 1, 2
    np.testing.assert_array_equal(vector[2560:5120], 4.5)  # mean of the zoomed views 3..6
    np.testing.assert_array_equal(vector[5120:], 1.0)  # class probabilities: the tiles'


def test_resize_center_crop_shortest_edge_then_centre() -> None:
    image = Image.new("RGB", (400, 200), (0, 0, 255))
    image.paste((255, 0, 0), (100, 0, 300, 200))  # after resize to 448x224 the red band is x 112..336
    out = np.asarray(resize_center_crop(image, 224, 224))
    assert out.shape == (224, 224, 3)
    assert out[:, 2:-2, 0].min() >= 250


@pytest.fixture(scope="module")
def dog_and_cat(real_data: Path) -> list[Image.Image]:
    """A dog photo and a cat photo of the real data, found by the words of their captions."""
    dataset = load_dataset(real_data)
    photos = []
    for words in (r"dog", r"cat|kitten"):
        for query_id, text in dataset.query_texts().items():
            path = dataset.image_path(caption_image(query_id))
            if re.search(rf"\b({words})\b", text.lower()) and path.exists():
                photos.append(read_image(path))
                break
    assert len(photos) == 2, "the dataset should hold a dog photo and a cat photo"
    return photos


@pytest.mark.data
@pytest.mark.slow
@pytest.mark.parametrize("name", ["effnet-lite0", "effnet-lite2", "effnet-lite0+lite2", "effnet-lite0+lite2+zoom"])
def test_effnet_on_real_photos(name: str, dog_and_cat: list[Image.Image]) -> None:
    encoder = get_image_encoder(name)
    vectors = encoder.encode(dog_and_cat)
    assert vectors.shape == (2, encoder.dim) and vectors.dtype == np.float32
    pooled, probs = vectors[:, slice(*encoder.fields["pooled"])], vectors[:, slice(*encoder.fields["probs"])]
    assert probs.shape[1] == 1000 and encoder.fields["pooled"][1] == encoder.fields["probs"][0]
    assert np.isfinite(vectors).all() and pooled.min() >= 0  # ReLU6 features
    np.testing.assert_allclose(probs.sum(axis=1), 1.0, atol=1e-4)
    dog, cat = probs
    assert DOG_CLASSES.start <= dog.argmax() < DOG_CLASSES.stop
    assert CAT_CLASSES.start <= cat.argmax() < CAT_CLASSES.stop
    assert dog[DOG_CLASSES].sum() > 10 * dog[CAT_CLASSES].sum()
    cosine = pooled[0] @ pooled[1] / np.linalg.norm(pooled, axis=1).prod()
    assert cosine < 0.9
    # deterministic, and a vector does not depend on its batch mates
    np.testing.assert_allclose(encoder.encode(dog_and_cat[:1])[0], vectors[0], atol=1e-5)
    np.testing.assert_array_equal(encoder.encode(dog_and_cat), vectors)


@pytest.mark.slow
def test_fused_effnet_is_the_tile_mean_of_lite0_and_lite2() -> None:
    fused, lite0, lite2 = (get_image_encoder(f"effnet-{v}") for v in ("lite0+lite2", "lite0", "lite2"))
    photo = Image.fromarray(np.random.default_rng(0).integers(0, 256, (300, 400, 3), dtype=np.uint8))
    tiles = fused.preprocess(photo)
    assert tiles.shape == (3, 3, 260, 260) and fused.id != lite2.id
    vector = fused.encode_arrays(tiles[None])[0]
    large = lite2.encode_arrays(tiles)
    small = lite0.encode_arrays(
        torch.nn.functional.interpolate(torch.from_numpy(tiles), size=(224, 224), mode="bilinear", antialias=True)
        .numpy()
    )
    np.testing.assert_allclose(vector[:1280], small[:, :1280].mean(0), atol=1e-5)
    np.testing.assert_allclose(vector[1280:2560], large[:, :1280].mean(0), atol=1e-5)
    np.testing.assert_allclose(vector[2560:], (small[:, 1280:] + large[:, 1280:]).mean(0) / 2, atol=1e-6)
    # the tiles differ, so the mean is not any single tile's vector
    assert not np.allclose(large[0, :1280], large[1, :1280], atol=1e-3)


@pytest.mark.slow
@pytest.mark.parametrize("name", ["effnet-lite0", "effnet-lite0+lite2"])
def test_effnet_on_onnx_runtime_gives_pytorchs_vectors(name: str) -> None:
    photos = [Image.fromarray(np.random.default_rng(seed).integers(0, 256, (300, 400, 3), dtype=np.uint8))
              for seed in (1, 2)]
    onnx, reference = get_image_encoder(name).encode(photos), get_image_encoder(f"{name}:torch").encode(photos)
    cosine = np.sum(onnx * reference, axis=1) / np.linalg.norm(onnx, axis=1) / np.linalg.norm(reference, axis=1)
    assert cosine.min() >= 0.9999
    np.testing.assert_allclose(onnx, reference, atol=1e-4)


class _StubLite:
    """An EfficientNet-Lite stand-in: pooled = the first channel's mean per 1280 slot, probs = a constant."""

    def __init__(self, image_size: int, value: float) -> None:
        self.image_size, self.value = image_size, value

    def encode_arrays(self, batch: np.ndarray) -> np.ndarray:
        pooled = np.repeat(batch[:, :1].mean(axis=(2, 3)), 1280, axis=1) + self.value
        return np.hstack([pooled, np.full((len(batch), 1000), self.value)]).astype(np.float32)


def test_fused_encoder_vectors_are_the_mean_of_its_view_vectors() -> None:
    fused = get_image_encoder("effnet-lite0+lite2")
    fused.small, fused.large = _StubLite(224, 1.0), _StubLite(260, 3.0)
    tiles = np.stack([fused.preprocess(Image.new("RGB", (390, 260), colour)) for colour in ("red", "gray")])
    views = fused.encode_views(tiles[0])
    assert views.shape == (3, fused.dim) and np.allclose(views[:, 2560:], 2.0)  # probs: the two networks' mean
    np.testing.assert_allclose(fused.encode_arrays(tiles)[0], views.mean(axis=0), rtol=1e-6)
    crop = fused.preprocess_view(Image.new("RGB", (260, 260), "white"))
    assert crop.shape == (3, 260, 260) and fused.encode_views(crop[None]).shape == (1, fused.dim)


def test_serial_tokenizer_lets_one_thread_in_at_a_time() -> None:
    import threading
    import time
    from concurrent.futures import ThreadPoolExecutor

    from picsearch.encoders.base import SerialTokenizer

    class Borrowing:
        """Fails like a fast tokenizer whose state two threads set at once."""

        busy = False

        def __call__(self, texts, **kwargs):
            if self.busy:
                raise RuntimeError("Already borrowed")
            self.busy = True
            time.sleep(0.005)
            self.busy = False
            return {"input_ids": [len(text) for text in texts], **kwargs}

    bare, tokenizer = Borrowing(), SerialTokenizer(Borrowing())
    with ThreadPoolExecutor(8) as pool:
        with pytest.raises(RuntimeError, match="Already borrowed"):  # the hazard is real without the lock
            list(pool.map(lambda i: bare([str(i)]), range(32)))
        out = list(pool.map(lambda i: tokenizer(["x" * i], padding=True), range(32)))
    assert [row["input_ids"] for row in out] == [[i] for i in range(32)] and out[0]["padding"] is True
