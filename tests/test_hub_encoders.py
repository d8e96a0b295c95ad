"""Hub encoders on tiny random models (tests/hub_models.py) saved to a temp folder (never the network)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch
import transformers
from PIL import Image

from picsearch.encoders import EncoderUnavailableError, get_image_encoder, get_text_encoder
from picsearch.encoders import hub
from picsearch.encoders.hub import ImageRecipe

from hub_models import CLIP_MEAN, CLIP_STD

TEXTS = ["a dog", "a cat on a sofa", "dogs"]


def _photo(width: int, height: int, seed: int) -> Image.Image:
    rng = np.random.default_rng(seed)
    return Image.fromarray(rng.integers(0, 256, (height, width, 3), dtype=np.uint8))


def test_clip_matches_transformers_reference(clip_dir: Path) -> None:
    images = [_photo(48, 40, 0), _photo(40, 64, 1)]
    image_encoder = get_image_encoder(f"clip:{clip_dir}")
    text_encoder = get_text_encoder(f"clip:{clip_dir}")
    image_vectors = image_encoder.encode(images)
    text_vectors = text_encoder.encode(TEXTS)

    model = transformers.CLIPModel.from_pretrained(clip_dir).eval()
    pixels = transformers.CLIPImageProcessorPil.from_pretrained(clip_dir)(images, return_tensors="pt")["pixel_values"]
    tokens = transformers.AutoTokenizer.from_pretrained(clip_dir)(TEXTS, padding=True, return_tensors="pt")
    with torch.no_grad():
        reference = model(pixel_values=pixels, **tokens)

    assert image_encoder.dim == text_encoder.dim == 16
    assert image_vectors.shape == (2, 16) and image_vectors.dtype == np.float32
    assert text_vectors.shape == (3, 16) and text_vectors.dtype == np.float32
    np.testing.assert_allclose(np.linalg.norm(image_vectors, axis=1), 1.0, atol=1e-5)
    np.testing.assert_allclose(image_vectors, reference.image_embeds.numpy(), atol=1e-4)
    np.testing.assert_allclose(text_vectors, reference.text_embeds.numpy(), atol=1e-4)
    assert image_encoder.model is text_encoder.model  # both towers share one loaded model
    assert image_encoder.fields == {"pooled": (0, 16)}


def test_resnet_loads_backbone_of_classification_checkpoint(resnet_dir: Path) -> None:
    images = [_photo(50, 37, 3), _photo(37, 37, 4)]
    encoder = get_image_encoder(f"resnet18:{resnet_dir}")
    vectors = encoder.encode(images)

    model = transformers.ResNetForImageClassification.from_pretrained(resnet_dir).eval()
    pixels = transformers.ConvNextImageProcessorPil.from_pretrained(resnet_dir)(images, return_tensors="pt")
    with torch.no_grad():
        reference = model.resnet(pixel_values=pixels["pixel_values"]).pooler_output.flatten(1).numpy()

    assert encoder.recipe.resize == 36 and encoder.recipe.crop == 32  # int(32 / 0.875), crop 32
    assert vectors.shape == (2, 12) and vectors.dtype == np.float32
    np.testing.assert_allclose(vectors, reference, atol=1e-4)


def test_bert_mean_pool_ignores_padding(bert_dir: Path) -> None:
    encoder = get_text_encoder(f"bert:{bert_dir}")
    alone = encoder.encode(["a dog"])
    padded = encoder.encode(["a dog", "a cat on a sofa dogs dogs"])
    assert encoder.dim == 16
    assert padded.shape == (2, 16) and padded.dtype == np.float32
    np.testing.assert_allclose(padded[0], alone[0], atol=1e-5)
    assert not np.allclose(padded[0], padded[1], atol=1e-3)
    assert encoder.encode([]).shape == (0, 16)


def test_ids_name_the_source(clip_dir: Path, resnet_dir: Path) -> None:
    clip_id = get_image_encoder(f"clip:{clip_dir}").id
    assert clip_id.startswith("clip-image-") and clip_id != get_text_encoder(f"clip:{clip_dir}").id
    assert get_image_encoder(f"resnet18:{resnet_dir}").id.startswith("resnet18-image-")
    # same folder name, different place: different cache keys
    assert hub._encoder_id("clip", "image", "/a/model") != hub._encoder_id("clip", "image", "/b/model")


def test_offline_missing_model_fails_at_once_with_one_line() -> None:
    with pytest.raises(EncoderUnavailableError) as info:
        get_image_encoder("clip:nobody-here/no-such-model-xyz")
    message = str(info.value)
    assert "\n" not in message
    assert "hf download nobody-here/no-such-model-xyz" in message
    assert "clip:/path/to/folder" in message


def test_missing_folder_is_named() -> None:
    with pytest.raises(EncoderUnavailableError, match="folder not found: /no/such/folder"):
        get_text_encoder("bert:/no/such/folder")


def test_folder_without_weights_is_reported(tmp_path: Path, clip_dir: Path) -> None:
    (tmp_path / "config.json").write_text((clip_dir / "config.json").read_text())
    encoder = get_image_encoder(f"clip:{tmp_path}")  # config alone is enough to build; weights load lazily
    with pytest.raises(EncoderUnavailableError, match=f"cannot load the model folder {tmp_path}"):
        encoder.encode([_photo(32, 32, 5)])


@pytest.mark.parametrize(
    ("config", "expected"),
    [
        # openai/clip-vit-base-patch32
        ({"size": 224, "crop_size": 224, "resample": 3, "image_mean": CLIP_MEAN, "image_std": CLIP_STD},
         (224, 224, 3)),
        # microsoft/resnet-18 (ConvNext-style processor)
        ({"crop_pct": 0.875, "size": 224, "resample": 3, "image_mean": [0.485, 0.456, 0.406]}, (256, 224, 3)),
        ({"size": {"height": 384, "width": 384}, "resample": 2}, (None, 384, 2)),
    ],
)
def test_recipe_from_published_configs(config: dict, expected: tuple) -> None:
    default = ImageRecipe(1, 1, (0.0, 0.0, 0.0), (1.0, 1.0, 1.0), Image.BILINEAR)
    recipe = ImageRecipe.from_config(config, default)
    assert (recipe.resize, recipe.crop, recipe.resample) == expected
    assert recipe.mean == tuple(config.get("image_mean", default.mean))
    assert recipe.apply(_photo(300, 200, 6)).shape == (3, expected[1], expected[1])
