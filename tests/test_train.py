import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from typer.testing import CliRunner

from picsearch.interfaces.cli import app
from picsearch.encoders import DEFAULT_IMAGE_ENCODER, DEFAULT_TEXT_ENCODER
from picsearch.models import RelevanceBundle
from picsearch.models.layout import ImageLayout
from picsearch.models.selection import TRAINING_DATA_OPTIONS, Encoders, choose_joint, joint_options, lowest_rmse


def test_shared_space_only_for_the_two_towers_of_one_clip() -> None:
    layout = ImageLayout((0, 4))
    same = Encoders("clip", "clip-image-tiny-ab12-v1", "clip", "clip-text-tiny-ab12-v1", layout)
    other = Encoders("clip", "clip-image-tiny-ab12-v1", "clip", "clip-text-big-ff00-v1", layout)
    mixed = Encoders("resnet18", "resnet18-image-r-1-v1", "bert", "bert-text-b-2-v1", layout)
    assert same.shared_space and not other.shared_space and not mixed.shared_space


def test_joint_options_cover_singles_all_and_leave_one_out() -> None:
    options = joint_options(["a", "b", "c"])
    assert options["a"] == {"a": 1.0} and options["all"] == {"a": 1.0, "b": 1.0, "c": 1.0}
    assert options["all-b"] == {"a": 1.0, "c": 1.0}
    assert "all-a" not in joint_options(["a", "b"])


def test_lowest_rmse_takes_the_first_listed_within_one_standard_error() -> None:
    summaries = {"simple": {"rmse": 0.1790, "rmse_std": 0.008}, "rich": {"rmse": 0.1781, "rmse_std": 0.008},
                 "far": {"rmse": 0.2100, "rmse_std": 0.001}}
    assert lowest_rmse(summaries, folds=5) == "simple"  # 0.0009 worse, inside 0.008 / sqrt(5)
    assert lowest_rmse(summaries, folds=500) == "rich"  # with so many folds the gap is real
    assert lowest_rmse({"far": summaries["far"], **summaries}, folds=5) == "simple"  # first listed *within* reach
    assert lowest_rmse({"only": summaries["far"]}, folds=5) == "only"


def test_choose_joint_takes_the_smallest_space_within_one_standard_error() -> None:
    def option(recall5: float, mrr: float, dims: int) -> dict[str, float]:
        return {"recall@5": recall5, "mrr": mrr, "dims": dims}

    # 1600 queries at R@5 0.75: standard error 0.0108
    summary = {"big": option(0.754, 0.516, 5120), "mid": option(0.750, 0.527, 2560),
               "small": option(0.725, 0.501, 768), "tie": option(0.750, 0.520, 2560)}
    assert choose_joint(summary, n_queries=1600) == "mid"  # "small" is 2.7 errors below; "tie" has a worse MRR
    assert choose_joint(summary, n_queries=100_000) == "big"  # with this many queries 0.004 is a real difference
    assert choose_joint({"only": option(0.5, 0.3, 10)}, n_queries=10) == "only"


@pytest.mark.data
@pytest.mark.slow
def test_train_end_to_end_on_real_data(real_data: Path, real_artifacts: Path) -> None:
    out = real_artifacts  # written by `picsearch train` once per session (tests/conftest.py)
    metrics = json.loads((out / "metrics.json").read_text())
    models = metrics["models"]
    assert set(models) == {"concat_ridge", "concat_mlp", "concat_lgbm", "matching_head"}
    for m in models.values():
        assert {"rmse", "mae", "tau_c_expert", "tau_b_crowd", "rmse_holdout", "fit_seconds", "rmse_std"} <= set(m)
        assert {"rmse_filtered", "tau_c_expert_filtered", "tau_b_crowd_filtered"} <= set(m)
        assert 0 < m["rmse"] < 0.269  # better than the constant predictor
    assert metrics["selected"] == min(models, key=lambda n: models[n]["rmse"])
    options = metrics["training_data_options"]
    assert set(options) == set(TRAINING_DATA_OPTIONS)
    assert options["expert"] == {k: v for k, v in models[metrics["selected"]].items() if k != "rmse_holdout"}
    assert metrics["training_data"]["option"] == min(options, key=lambda n: options[n]["rmse"])
    assert models["matching_head"]["tau_c_expert"] > 0.35
    assert metrics["child_detector"]["cv"]["recall"] >= 0.99
    retrieval = metrics["retrieval_cv"]
    joint, reranked = retrieval["options"][retrieval["joint"]], retrieval["options"][f"{retrieval['joint']}+rerank"]
    assert joint["gallery_size"] == 1000 and joint["recall@5"] > 0.25  # chance: 0.005
    at_200, reranked_200 = joint["by_size"]["200"], reranked["by_size"]["200"]
    assert at_200["recall@5"] > 0.55 and reranked_200["mrr"] > at_200["mrr"] - 0.02  # ordering by score loses nothing
    bundle = RelevanceBundle.load(out)
    assert bundle.image_encoder == DEFAULT_IMAGE_ENCODER and bundle.text_encoder == DEFAULT_TEXT_ENCODER
    report = CliRunner().invoke(app, ["report", "models", "--model", str(out), "--data", str(real_data)])
    assert report.exit_code == 0, report.output
    report_text = (out / "report" / "models.md").read_text()
    assert report_text.count("| matching_head") == 1 and f"| {metrics['training_data']['option']} **(chosen)**" in report_text
    assert all((out / "report" / name).stat().st_size > 0 for name in ("pred_vs_true.png", "reliability.png"))
    assert np.isfinite(bundle.child_threshold)
