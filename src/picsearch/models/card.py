"""The model card: provenance (data hashes, encoders, library versions) and the comparison table, in JSON and
Markdown. :func:`model_table` is the one rendering of the models' metrics (card, report and CLI use it)."""

from __future__ import annotations

import platform
import time
from importlib.metadata import version
from typing import Any

from picsearch.data.tables import CROWD_TSV, EXPERT_TSV, TEST_QUERIES_CSV, TRAIN_CSV, Dataset
from picsearch.markdown import markdown_table
from picsearch.models.artifacts import RelevanceBundle
from picsearch.storage import file_sha256

LIBRARIES = ("numpy", "pandas", "scikit-learn", "lightgbm", "torch", "safetensors")
MODEL_COLUMNS = ["model", "RMSE", "MAE", "τ_c expert", "τ_b crowd", "RMSE hold-out", "fit s"]


def model_table(metrics: dict[str, Any], mark: str = " (selected)") -> list[list[str]]:
    """One row of :data:`MODEL_COLUMNS` per compared model: CV mean ± std over folds, hold-out RMSE, fit
    seconds; the selected model's name carries ``mark``."""
    rows = []
    for name, m in metrics["models"].items():
        rows.append([
            name + (mark if name == metrics["selected"] else ""),
            f"{m['rmse']:.4f} ± {m['rmse_std']:.4f}", f"{m['mae']:.4f} ± {m['mae_std']:.4f}",
            f"{m['tau_c_expert']:.3f} ± {m['tau_c_expert_std']:.3f}",
            f"{m['tau_b_crowd']:.3f} ± {m['tau_b_crowd_std']:.3f}", f"{m['rmse_holdout']:.4f}", f"{m['fit_seconds']:.1f}",
        ])
    return rows


def model_card(dataset: Dataset, metrics: dict[str, Any], bundle: RelevanceBundle) -> dict[str, Any]:
    """Provenance: data file hashes, encoders, library versions, metrics."""
    files = (TRAIN_CSV, EXPERT_TSV, CROWD_TSV, TEST_QUERIES_CSV)
    return {
        "data": {name: file_sha256(dataset.root / name) for name in files},
        "encoders": {
            "image": {"name": bundle.image_encoder, "id": bundle.image_encoder_id},
            "text": {"name": bundle.text_encoder, "id": bundle.text_encoder_id},
        },
        "libraries": {"python": platform.python_version(), **{lib: version(lib) for lib in LIBRARIES}},
        "selected": bundle.selected,
        "joint_weights": bundle.joint.weights,
        "trained_at": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
        "metrics": metrics,
    }


def retrieval_line(retrieval: dict[str, Any]) -> str:
    """The retrieval CV of the chosen joint space, R@1 / R@5 / MRR at every gallery size."""
    joint = retrieval["joint"]
    sizes = "; ".join(
        f"{size} images R@1 {r['recall@1']:.3f}, R@5 {r['recall@5']:.3f}, MRR {r['mrr']:.3f}"
        for size, r in retrieval["options"][joint]["by_size"].items()
    )
    return f"Retrieval CV, joint space `{joint}` (chosen on R@5 at {retrieval['gallery_size']} images): {sizes}."


def card_markdown(card: dict[str, Any]) -> str:
    """The card as Markdown (``MODEL_CARD.md``)."""
    metrics = card["metrics"]
    lines = [
        "# picsearch relevance model card", "",
        f"Selected: **{card['selected']}** (the first listed within one standard error of the lowest "
        f"{metrics['training_data']['folds']}-fold grouped CV RMSE); "
        f"joint space: {card['joint_weights']}.", "",
        f"Image encoder `{card['encoders']['image']['id']}`, text encoder `{card['encoders']['text']['id']}`.", "",
        markdown_table(MODEL_COLUMNS, model_table(metrics, " **(selected)**")), "",
        retrieval_line(metrics["retrieval_cv"]), "",
        "Data (sha256): " + ", ".join(f"`{k}` {v[:12]}" for k, v in card["data"].items()), "",
        "Libraries: " + ", ".join(f"{k} {v}" for k, v in card["libraries"].items()), "",
        "Full numbers: `metrics.json`; provenance: `model_card.json`.", "",
    ]
    return "\n".join(lines)
