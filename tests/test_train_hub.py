"""`picsearch train` end to end on tiny random hub encoders: the study's ResNet-18 + BERT pipeline and the
CLIP path (both towers) run wherever those weights exist. Models come from tests/hub_models.py, offline."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from typer.testing import CliRunner

from picsearch.data import load_dataset
from picsearch.data.images import read_image
from picsearch.encoders import get_image_encoder, get_text_encoder
from picsearch.interfaces.cli import app
from picsearch.models import RelevanceBundle

from tiny_dataset import write_tiny_dataset

MODELS = {"concat_ridge", "concat_mlp", "concat_lgbm", "matching_head"}


@pytest.fixture(scope="module")
def data(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """40 train images, 10 of them child images: enough for 3 grouped folds and the child detector's 5."""
    return write_tiny_dataset(tmp_path_factory.mktemp("data"), extra=36)


def _train_and_load(data: Path, out: Path, image_encoder: str, text_encoder: str) -> tuple[dict, RelevanceBundle]:
    """Run `picsearch train` with 3 folds; check metrics.json and the saved bundle's encoders."""
    args = ["train", "--data", str(data), "--out", str(out), "--image-encoder", image_encoder,
            "--text-encoder", text_encoder, "--folds", "3"]
    result = CliRunner().invoke(app, args)
    assert result.exit_code == 0, result.output
    metrics = json.loads((out / "metrics.json").read_text())
    assert set(metrics["models"]) == MODELS and metrics["selected"] in MODELS
    assert metrics["training_data"]["folds"] == 3
    bundle = RelevanceBundle.load(out)
    assert (bundle.image_encoder, bundle.text_encoder, bundle.selected) == (
        image_encoder, text_encoder, metrics["selected"]
    )
    return metrics, bundle


def _check_scores(data: Path, bundle: RelevanceBundle) -> None:
    """Pairs of real images and captions, embedded by the bundle's encoders, score in [0, 1]."""
    image_encoder, text_encoder = get_image_encoder(bundle.image_encoder), get_text_encoder(bundle.text_encoder)
    bundle.check_encoders(image_encoder.id, text_encoder.id)
    pairs = load_dataset(data).train.iloc[::12]
    images = image_encoder.encode([read_image(data / "train_images" / name) for name in pairs["image"]])
    texts = text_encoder.encode(pairs["query_text"].tolist())
    scores = bundle.score(images, texts)
    assert scores.shape == (len(pairs),) and np.isfinite(scores).all()
    assert ((scores >= 0) & (scores <= 1)).all()
    np.testing.assert_allclose(np.linalg.norm(bundle.joint_image(images), axis=1), 1.0, atol=1e-5)


@pytest.mark.slow
def test_train_resnet18_and_bert(data: Path, resnet_dir: Path, bert_dir: Path, tmp_path: Path) -> None:
    metrics, bundle = _train_and_load(data, tmp_path / "out", f"resnet18:{resnet_dir}", f"bert:{bert_dir}")
    assert "shared_space" not in bundle.joint.matchers  # two models: no space they already share
    assert metrics["child_detector"]["cv"]["n_child"] == 10
    _check_scores(data, bundle)


@pytest.mark.slow
def test_train_clip_uses_its_shared_space(data: Path, clip_dir: Path, tmp_path: Path) -> None:
    metrics, bundle = _train_and_load(data, tmp_path / "out", f"clip:{clip_dir}", f"clip:{clip_dir}")
    # Which joint space wins is chance on random models; the shared space must be among those compared.
    options = metrics["retrieval_cv"]["options"]
    assert "shared_space" in options and "all-shared_space" in options
    _check_scores(data, bundle)
