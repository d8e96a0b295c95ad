import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from typer.testing import CliRunner

import picsearch.models.train as train_module
from picsearch.data import load_dataset
from picsearch.features import DatasetFeatures
from picsearch.interfaces.cli import app
from picsearch.encoders import DEFAULT_IMAGE_ENCODER, DEFAULT_TEXT_ENCODER
from picsearch.models import RelevanceBundle
from picsearch.models.concat import ConcatRidge
from picsearch.models.layout import ImageLayout
from picsearch.models.selection import TRAINING_DATA_OPTIONS, Encoders, choose_joint, joint_options, lowest_rmse
from picsearch.models.train import TrainConfig, train_models
from tiny_dataset import write_tiny_dataset


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


def _random_features(dataset, dim: int = 6) -> DatasetFeatures:
    """Random vectors for every image and text of ``dataset``."""
    images = sorted(set(dataset.expert["image"]) | set(dataset.crowd["image"]) | set(dataset.train["image"]))
    texts = sorted(set(dataset.expert["query_id"]) | set(dataset.crowd["query_id"]) | set(dataset.train["query_id"]))
    rng = np.random.default_rng(0)
    return DatasetFeatures(
        "random-image", "random-text", {}, rng.normal(size=(len(images), dim)).astype(np.float32),
        {name: i for i, name in enumerate(images)}, rng.normal(size=(len(texts), dim)).astype(np.float32),
        {query_id: i for i, query_id in enumerate(texts)},
    )


@pytest.mark.parametrize("winner", ["expert", "combined"])
def test_the_refit_and_retrieval_estimate_are_of_the_data_option_chosen(
    winner: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """`train` starts the default option's refit and estimate early; when another option wins, both are redone
    on it, and the bundle never keeps the default's. The candidates' fits start slowest first, and their results
    still come back in the listed order, which the selection rule ranks by."""
    dataset = load_dataset(write_tiny_dataset(tmp_path / "data", extra=36))
    feats = _random_features(dataset)
    layout = ImageLayout((0, 6))
    targets = {
        name: TRAINING_DATA_OPTIONS[name].build(dataset, feats, layout).pairs["target"].to_numpy()
        for name in ("expert", "combined")
    }
    assert not np.allclose(targets["expert"], targets["combined"])  # else the test could not tell them apart
    fitted_targets, estimated_on, estimates = {}, [], []
    real_fit, real_estimate = ConcatRidge.fit, train_module.retrieval_cv

    def fit(model, data):
        fitted_targets[id(model)] = data.pairs["target"].to_numpy()
        return real_fit(model, data)

    def estimate(data, *args, **kwargs):
        estimated_on.append(data.pairs["target"].to_numpy())
        estimates.append(real_estimate(data, *args, **kwargs))
        return estimates[-1]

    def choose(summaries, folds):  # the ridge among the models; the training data the test names
        return winner if "combined" in summaries else "concat_ridge"

    monkeypatch.setattr(ConcatRidge, "fit", fit)
    monkeypatch.setattr(train_module, "retrieval_cv", estimate)
    monkeypatch.setattr(train_module, "lowest_rmse", choose)
    models = ("concat_ridge", "concat_mlp")
    config = TrainConfig(folds=2, data_options=("expert", "combined"), models=models, workers=2)
    encoders = Encoders("random", "random-image", "random", "random-text", layout)
    result = train_models(dataset, feats, encoders, config, show_progress=False)

    assert tuple(result.metrics["models"]) == models and tuple(result.cv) == models
    assert result.metrics["training_data"]["option"] == winner
    np.testing.assert_array_equal(fitted_targets[id(result.bundle.scorer)], targets[winner])
    assert len(estimated_on) == (1 if winner == "expert" else 2)
    np.testing.assert_array_equal(estimated_on[-1], targets[winner])
    assert result.metrics["retrieval_cv"]["options"] == estimates[-1][0]

    np.testing.assert_array_equal(result.training_set.pairs["target"].to_numpy(), targets[winner])


def test_train_keeps_a_booster_for_mapped_queries_beside_the_scorer(synthetic_bundle: Path) -> None:
    """The synthetic bundle is trained by `picsearch train` with the default multilingual map: its scorer for
    mapped queries reads the scorer's matchers (the index holds nothing more) through a booster of its own."""
    manifest = json.loads((synthetic_bundle / "model.json").read_text(encoding="utf-8"))
    metrics = json.loads((synthetic_bundle / "metrics.json").read_text(encoding="utf-8"))
    assert "text_map" in manifest and manifest["mapped_booster"]["texts"] == {"booster": "scorer_mapped.0.lgb.txt"}
    assert metrics["text_map"]["mapped_scorer"] is True
    bundle = RelevanceBundle.load(synthetic_bundle)
    assert bundle.mapped_scorer.matchers_ is bundle.scorer.matchers_
    assert bundle.mapped_scorer.booster_.model_to_string() != bundle.scorer.booster_.model_to_string()


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
    assert "| under 1/3 (weak) |" in report_text and "| 1/3 or more |" in report_text
    assert report_text.count("| matching_head") == 1 and f"| {metrics['training_data']['option']} **(chosen)**" in report_text
    assert all((out / "report" / name).stat().st_size > 0 for name in ("pred_vs_true.png", "reliability.png"))
    assert np.isfinite(bundle.child_threshold)
