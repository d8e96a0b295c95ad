"""The demo end to end on the real data: train or reuse, index test_images/, search, render."""

from __future__ import annotations

import json

import pytest
from PIL import Image
from typer.testing import CliRunner

from picsearch.index import GalleryIndex
from picsearch.interfaces.cli import app
from picsearch.policy import DISCLAIMER
from picsearch.reports.render import THUMB

pytestmark = [pytest.mark.data, pytest.mark.slow]


def test_demo_shows_results_and_disclaimers(real_data, real_artifacts, tmp_path):
    out = tmp_path / "demo"
    args = ["demo", "--data", str(real_data), "--artifacts", str(real_artifacts), "--out", str(out)]
    result = CliRunner().invoke(app, [*args, "--n", "10", "--seed", "0"])
    assert result.exit_code == 0, result.output
    html = (out / "index.html").read_text()
    grid = Image.open(out / "grid.png")
    assert grid.height > 10 * THUMB and grid.width > 5 * THUMB
    index = GalleryIndex.load(out / "index")
    assert len(index) == 100
    hidden = {image_id for image_id, child in zip(index.ids, index.child) if child}
    shown = {path.stem for path in (out / "thumbs").glob("*.jpg")}
    assert shown and not shown & hidden  # no child-flagged image was rendered
    assert html.count("<section>") == 10

    own = CliRunner().invoke(app, [*args, "--queries", "a dog runs on the grass", "--queries", "two girls on a swing"])
    assert own.exit_code == 0, own.output
    assert "reus" in own.output.lower()  # models and index reused, nothing retrained
    html = (out / "index.html").read_text()
    assert html.count("<section>") == 2 and DISCLAIMER in html and "a dog runs on the grass" in html
    assert "labelled match" not in html  # own queries have no labelled answer
    report = json.loads((real_artifacts / "metrics.json").read_text())
    assert report["selected"]


def test_demo_serve_answers_searches_on_the_demo_index(real_data, real_artifacts, tmp_path, stub_uvicorn):
    from fastapi.testclient import TestClient

    served = stub_uvicorn
    out = tmp_path / "demo"
    args = ["demo", "--data", str(real_data), "--artifacts", str(real_artifacts), "--out", str(out), "--n", "1"]
    result = CliRunner().invoke(app, [*args, "--serve", "--port", "8123"])
    assert result.exit_code == 0, result.output
    assert (served["host"], served["port"], served["ran"]) == ("127.0.0.1", 8123, True)
    client = TestClient(served["app"])
    index = GalleryIndex.load(out / "index")
    assert client.get("/healthz").json()["images"] == len(index) - int(index.child.sum())  # child images never
    dogs = client.get("/api/search", params={"q": "a dog runs on the grass", "k": 3}).json()
    assert len(dogs["results"]) == 3 and not dogs["blocked"]
    assert client.get("/api/search", params={"q": "two girls on a swing"}).json()["disclaimer"] == DISCLAIMER


def test_models_of_another_encoder_are_not_reused(real_data, real_artifacts):
    from picsearch.data import load_dataset
    from picsearch.reports.demo import trained_on

    dataset = load_dataset(real_data)
    assert trained_on(dataset, real_artifacts)
    assert not trained_on(dataset, real_artifacts, image_encoder="effnet-lite0")
    assert not trained_on(dataset, real_artifacts, text_encoder="bert")


def test_models_of_an_earlier_version_of_the_encoder_are_not_reused(real_data, real_artifacts, monkeypatch):
    from picsearch.data import load_dataset
    from picsearch.encoders import get_text_encoder
    from picsearch.reports.demo import trained_on

    dataset = load_dataset(real_data)
    assert trained_on(dataset, real_artifacts)
    monkeypatch.setattr(type(get_text_encoder()), "id", "same-name-earlier-version")
    assert not trained_on(dataset, real_artifacts)
