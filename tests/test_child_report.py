"""`picsearch report child` on the synthetic bundle's training run (its out-of-fold child predictions)."""

from __future__ import annotations

import json
from pathlib import Path

import pandas as pd
import pytest
from PIL import Image
from typer.testing import CliRunner

from picsearch.data import load_dataset
from picsearch.interfaces.cli import app
from picsearch.models.child import CHILD_PREDICTIONS
from picsearch.policy.filter import child_images
from picsearch.reports.child_report import curve, load_child_predictions


def test_training_saves_one_out_of_fold_probability_per_training_image(synthetic_bundle: Path):
    dataset = load_dataset(synthetic_bundle.parent / "data")
    frame = pd.read_csv(synthetic_bundle / CHILD_PREDICTIONS)
    assert sorted(frame["image"]) == sorted(set(dataset.train["image"]))
    children = child_images(dataset)
    assert frame["label"].astype(bool).tolist() == [name in children for name in frame["image"]]
    assert frame["probability"].between(0, 1).all() and frame["probability"].nunique() > len(frame) // 2


def test_curve_counts_the_hidden_share(synthetic_bundle: Path):
    frame = load_child_predictions(synthetic_bundle)
    points = curve(frame)
    for _, point in points.sample(min(5, len(points)), random_state=0).iterrows():
        flagged = frame["probability"] >= point["threshold"]
        assert point["hidden"] == pytest.approx(flagged.mean())
        assert point["recall"] == pytest.approx((flagged & frame["label"]).sum() / frame["label"].sum())


def test_report_child_writes_curves_misses_and_the_contact_sheet(synthetic_bundle: Path, tmp_path: Path):
    out = tmp_path / "report"
    result = CliRunner().invoke(app, ["report", "child", "--model", str(synthetic_bundle),
                                      "--data", str(synthetic_bundle.parent / "data"), "--out", str(out)])
    assert result.exit_code == 0, result.output
    text = (out / "child.md").read_text()
    assert "![false alarms](child_false_alarms.png)" in text and "| recall | threshold | precision | hidden |" in text
    for name in ("child_curves.png", "child_false_alarms.png"):
        assert Image.open(out / name).size[0] > 500
    frame = load_child_predictions(synthetic_bundle)
    threshold = json.loads((synthetic_bundle / "metrics.json").read_text())["child_detector"]["threshold"]
    misses = frame[frame["label"] & (frame["probability"] < threshold)]
    misses_part = text.split("## Child photos cross-validation misses")[1].split("## Most confident")[0]
    assert all(image in misses_part for image in misses["image"])
    assert misses_part.strip() == "None." if misses.empty else misses_part.count("\n| ") == len(misses) + 1


def test_report_child_without_predictions_is_one_line(tmp_path: Path, synthetic_bundle: Path):
    result = CliRunner().invoke(app, ["report", "child", "--model", str(tmp_path),
                                      "--data", str(synthetic_bundle.parent / "data")])
    assert result.exit_code == 2 and CHILD_PREDICTIONS in result.output and "Traceback" not in result.output
