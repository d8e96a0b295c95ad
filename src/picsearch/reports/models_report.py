"""`picsearch report models`: the comparison table and plots from a `picsearch train` artifacts folder."""

from __future__ import annotations

from pathlib import Path

import matplotlib.pyplot as plt
import numpy as np
import pandas as pd

from picsearch.data.tables import Dataset
from picsearch.labels import MINOR_ASPECTS, agreement, exp_mean_score
from picsearch.markdown import markdown_table
from picsearch.models.artifacts import METRICS
from picsearch.models.card import MODEL_COLUMNS, model_table
from picsearch.reports import save_figure
from picsearch.storage import load_json, write_bytes

PREDICTIONS = "cv_predictions.csv"
BINS = np.linspace(0.0, 1.0, 11)


def load_predictions(artifacts: Path, dataset: Dataset) -> pd.DataFrame:
    """Out-of-fold predictions per model, with ``true`` (exp_mean_score) and expert ``range``."""
    path = artifacts / PREDICTIONS
    if not path.is_file():
        raise FileNotFoundError(f"{path}: not found; run `picsearch train --out {artifacts}` first")
    frame = pd.read_csv(path, index_col="expert_row")
    frame["true"] = exp_mean_score(dataset.expert).loc[frame.index]
    frame["range"] = agreement(dataset.expert)["range"].loc[frame.index]
    return frame


def comparison_table(metrics: dict) -> str:
    """Markdown table of every model's CV metrics (mean ± std over folds), hold-out RMSE and fit seconds."""
    return markdown_table(MODEL_COLUMNS, model_table(metrics, " **(selected)**"))


def data_options_table(options: dict, chosen: str) -> str:
    lines = ["| training data | RMSE | τ_c expert | τ_b crowd |", "|---|---|---|---|"]
    for name, m in options.items():
        mark = " **(chosen)**" if name == chosen else ""
        lines.append(
            f"| {name}{mark} | {m['rmse']:.4f} ± {m['rmse_std']:.4f} | {m['tau_c_expert']:.3f} | {m['tau_b_crowd']:.3f} |"
        )
    return "\n".join(lines)


def retrieval_table(metrics: dict) -> str:
    retrieval = metrics["retrieval_cv"]
    lines = ["| joint space | dims | gallery | R@1 | R@5 | R@10 | MRR |", "|---|---|---|---|---|---|---|"]
    for name, r in retrieval["options"].items():
        lines.append(
            f"| {name} | {r['dims']} | {r['gallery_size']} | {r['recall@1']:.3f} | {r['recall@5']:.3f} "
            f"| {r['recall@10']:.3f} | {r['mrr']:.3f} |"
        )
    return "\n".join(lines)


def sizes_table(metrics: dict) -> str:
    """The chosen joint space, alone and reranked, at every gallery size of the estimate."""
    retrieval = metrics["retrieval_cv"]
    lines = ["| ranking | gallery | R@1 | R@5 | R@10 | MRR |", "|---|---|---|---|---|---|"]
    for name in (retrieval["joint"], f"{retrieval['joint']}+rerank"):
        for size, r in retrieval["options"][name]["by_size"].items():
            lines.append(
                f"| {name} | {size} | {r['recall@1']:.3f} | {r['recall@5']:.3f} | {r['recall@10']:.3f} | {r['mrr']:.3f} |"
            )
    return "\n".join(lines)


def child_table(child: dict) -> str:
    lines = ["| where | AUC | precision | recall | hidden share | images | child |", "|---|---|---|---|---|---|---|"]
    for where, m in (("5-fold CV (train images)", child["cv"]), ("test_images", child["test_images"])):
        lines.append(
            f"| {where} | {m['auc']:.3f} | {m['precision']:.3f} | {m['recall']:.3f} | {m['hidden_share']:.3f} | "
            f"{m['n_images']} | {m['n_child']} |"
        )
    return "\n".join(lines)


def weak_line_table(frame: pd.DataFrame, model: str) -> str:
    """``model``'s out-of-fold scores split at :data:`~picsearch.labels.MINOR_ASPECTS` (where search calls an
    answer weak), against the experts' mean score of the same pairs."""
    lines = ["| scored | pairs | experts' mean ≥ 2 | mean expert score |", "|---|---|---|---|"]
    weak = frame[model] < MINOR_ASPECTS
    for name, rows in (("under 1/3 (weak)", weak), ("1/3 or more", ~weak)):
        truth = frame.loc[rows, "true"]
        at_least_two = (truth >= MINOR_ASPECTS - 1e-9).mean()  # a mean of exactly 2 is (2 - 1) / 3
        lines.append(f"| {name} | {int(rows.sum())} | {at_least_two:.3f} | {1 + 3 * truth.mean():.2f} |")
    return "\n".join(lines)


def _save(fig: plt.Figure, path: Path) -> None:
    save_figure(fig, path)
    plt.close(fig)


def _grid(n: int) -> tuple[plt.Figure, np.ndarray]:
    cols = min(n, 4)
    rows = int(np.ceil(n / cols))
    fig, axes = plt.subplots(rows, cols, figsize=(3.6 * cols, 3.4 * rows), squeeze=False)
    for ax in axes.ravel()[n:]:
        ax.set_visible(False)
    return fig, axes.ravel()


def plot_pred_vs_true(frame: pd.DataFrame, models: list[str], path: Path) -> None:
    fig, axes = _grid(len(models))
    jitter = np.random.default_rng(0).uniform(-0.015, 0.015, len(frame))
    for ax, name in zip(axes, models):
        ax.scatter(frame["true"] + jitter, frame[name], s=3, alpha=0.25)
        ax.plot([0, 1], [0, 1], "k--", lw=1)
        ax.set(title=name, xlabel="exp_mean_score (true)", ylabel="predicted (out-of-fold)", xlim=(-0.05, 1.05), ylim=(-0.05, 1.05))
    fig.suptitle("Predicted vs true, 5-fold grouped CV")
    _save(fig, path)


def plot_reliability(frame: pd.DataFrame, models: list[str], path: Path) -> None:
    fig, ax = plt.subplots(figsize=(5.5, 5))
    for name in models:
        bins = pd.cut(frame[name], BINS, include_lowest=True)
        grouped = frame.groupby(bins, observed=True).agg(pred=(name, "mean"), true=("true", "mean"), n=("true", "size"))
        grouped = grouped[grouped["n"] >= 10]
        ax.plot(grouped["pred"], grouped["true"], "o-", label=name)
    ax.plot([0, 1], [0, 1], "k--", lw=1, label="perfect")
    ax.set(xlabel="mean predicted score (bin)", ylabel="mean exp_mean_score", title="Reliability (bins with ≥ 10 pairs)",
           xlim=(0, 1), ylim=(0, 1))
    ax.legend(fontsize=8)
    _save(fig, path)


def plot_error_by_agreement(frame: pd.DataFrame, models: list[str], path: Path) -> None:
    fig, ax = plt.subplots(figsize=(6.5, 4.5))
    ranges = sorted(frame["range"].unique())
    width = 0.8 / len(models)
    for i, name in enumerate(models):
        rmse = [np.sqrt(np.mean((frame.loc[frame["range"] == r, name] - frame.loc[frame["range"] == r, "true"]) ** 2)) for r in ranges]
        ax.bar(np.arange(len(ranges)) + i * width, rmse, width, label=name)
    counts = frame["range"].value_counts()
    ax.set_xticks(np.arange(len(ranges)) + 0.4 - width / 2, [f"{r} (n={counts[r]})" for r in ranges])
    ax.set(xlabel="expert score range (max − min; 0 = unanimous)", ylabel="RMSE", title="Error by expert agreement")
    ax.legend(fontsize=8)
    _save(fig, path)


def write_models_report(artifacts: Path, dataset: Dataset, out: Path) -> Path:
    """Write ``out/models.md`` and three PNG plots; returns the Markdown path."""
    artifacts, out = Path(artifacts), Path(out)
    metrics_path = artifacts / METRICS
    if not metrics_path.is_file():
        raise FileNotFoundError(f"{metrics_path}: not found; run `picsearch train --out {artifacts}` first")
    metrics = load_json(metrics_path)  # errors name the file and line
    frame = load_predictions(artifacts, dataset)
    models = list(metrics["models"])
    out.mkdir(parents=True, exist_ok=True)
    plot_pred_vs_true(frame, models, out / "pred_vs_true.png")
    plot_reliability(frame, models, out / "reliability.png")
    plot_error_by_agreement(frame, models, out / "error_by_agreement.png")
    data = metrics["training_data"]
    text = "\n".join([
        "# Relevance models", "",
        f"All models on the same image-disjoint splits: {data['folds']}-fold GroupKFold by image (mean ± std over folds) "
        f"and a {1 - data['holdout']:.0%}:{data['holdout']:.0%} grouped hold-out. Metrics on all {data['evaluation_pairs']} "
        f"expert pairs (τ_c: standard Flickr8k-Expert protocol); training on the expert pairs the child filter "
        f"keeps, {data['positives']} positive pairs "
        "for the matching models. A constant predictor scores RMSE 0.269.", "",
        comparison_table(metrics), "",
        f"Selected: **{metrics['selected']}** (the first listed within one standard error of the lowest CV RMSE).", "",
        "## Training data", "",
        f"The models above are compared on the first option below; {metrics['selected']} is cross-validated on "
        "each (same folds) and refitted on the first within one standard error of the lowest CV RMSE: "
        f"**{data['option']}** (target `{data['target']}`, crowd rows weight {data['crowd_rows']}). "
        "`combined` blends the crowd's vote share into the expert target; `crowd_rows` adds the crowd pairs the "
        "experts did not rate, target `true_frac`.", "",
        data_options_table(metrics["training_data_options"], data["option"]), "",
        "## Retrieval estimate on training folds", "",
        "Per fold, a gallery of every held-out image, queried with their own and crowd-confirmed captions by the "
        "models fitted on the other folds; other gallery sizes resample each query's distractors from its fold's "
        "held-out images (exact expectations within a fold's pool, an empirical-Bayes posterior beyond it; "
        "Monte Carlo galleries for the reranked ranking, at the sizes a fold holds). "
        f"`+rerank`: the top {metrics['retrieval_cv']['candidates']} by joint cosine reranked by the selected "
        f"model's score. Joint space chosen: `{metrics['retrieval_cv']['joint']}`, the one with the fewest "
        "dimensions among those whose R@5 in galleries of "
        f"{metrics['retrieval_cv']['gallery_size']} images is within one standard error of the best.", "",
        retrieval_table(metrics), "", sizes_table(metrics), "",
        "## Child-image detector", "",
        f"Threshold {metrics['child_detector']['threshold']:.4f} chosen for out-of-fold recall ≥ "
        f"{metrics['child_detector']['target_recall']}.", "",
        child_table(metrics["child_detector"]), "",
        "## Weak answers", "",
        "Search calls an answer weak when even its best image scores under 1/3, the score of an expert 2 "
        "(\"describes minor aspects of the image but does not describe the image\"; 1: not at all). The selected "
        "model's out-of-fold scores of the expert pairs, split there, against the experts' own mean:", "",
        weak_line_table(frame, metrics["selected"]), "",
        "## Plots", "",
        "![predicted vs true](pred_vs_true.png)", "", "![reliability](reliability.png)", "",
        "![error by agreement](error_by_agreement.png)", "",
    ])
    path = out / "models.md"
    write_bytes(path, text.encode("utf-8"))
    return path
