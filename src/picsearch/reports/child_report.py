"""`picsearch report child`: what the child detector's threshold costs, from its out-of-fold predictions.

Reads ``child_cv_predictions.csv`` (written by `picsearch train`: one row per training image, its
caption label and its out-of-fold probability) and the threshold in ``metrics.json``; writes
``child.md`` with the precision-recall curve, the share of photos hidden against recall, the child
photos cross-validation misses (with their captions), and a contact sheet of the most confident
false alarms: the harmless photos the operators' review queue will meet last.
"""

from __future__ import annotations

import json
import textwrap
from collections import defaultdict
from pathlib import Path

import matplotlib.pyplot as plt
import numpy as np
import pandas as pd
from sklearn.metrics import precision_recall_curve

from picsearch.data.images import ImageReadError, read_image
from picsearch.data.tables import Dataset, caption_image
from picsearch.models.artifacts import METRICS
from picsearch.models.child import CHILD_PREDICTIONS
from picsearch.markdown import markdown_table
from picsearch.policy import is_blocked
from picsearch.reports import save_figure
from picsearch.storage import write_bytes

SHEET_PHOTOS = 24
SHEET_COLUMNS = 6


def load_child_predictions(artifacts: Path) -> pd.DataFrame:
    """``image``, ``label`` (bool) and ``probability`` per training image; errors name the file."""
    path = Path(artifacts) / CHILD_PREDICTIONS
    if not path.is_file():
        raise FileNotFoundError(f"{path}: not found; train with this version (`picsearch train --out {artifacts}`)")
    frame = pd.read_csv(path)
    missing = {"image", "label", "probability"} - set(frame.columns)
    if missing:
        raise ValueError(f"{path}: missing column(s) {', '.join(sorted(missing))}")
    return frame.assign(label=frame["label"].astype(bool))


def curve(frame: pd.DataFrame) -> pd.DataFrame:
    """Per threshold: precision, recall, and the share of all photos hidden."""
    precision, recall, thresholds = precision_recall_curve(frame["label"], frame["probability"])
    probs = np.sort(frame["probability"].to_numpy())
    hidden = 1.0 - np.searchsorted(probs, thresholds, side="left") / len(probs)
    return pd.DataFrame({"threshold": thresholds, "precision": precision[:-1], "recall": recall[:-1], "hidden": hidden})


def captions_by_image(dataset: Dataset) -> dict[str, list[str]]:
    """Captions written for each image (train and test), in query-id order."""
    captions: dict[str, list[str]] = defaultdict(list)
    for query_id, text in sorted(dataset.query_texts().items()):
        captions[caption_image(query_id)].append(text)
    return captions


def plot_curves(points: pd.DataFrame, threshold: float, at: pd.Series, path: Path) -> None:
    fig, (left, right) = plt.subplots(1, 2, figsize=(11, 4.2))
    left.plot(points["recall"], points["precision"])
    left.set(xlabel="recall (child photos flagged)", ylabel="precision", title="Precision–recall (out-of-fold)",
             xlim=(0, 1.01), ylim=(0, 1.01))
    right.plot(points["recall"], points["hidden"])
    right.set(xlabel="recall (child photos flagged)", ylabel="share of all photos hidden",
              title="What recall costs the gallery", xlim=(0, 1.01), ylim=(0, 1.01))
    for ax, y in ((left, at["precision"]), (right, at["hidden"])):
        ax.plot([at["recall"]], [y], "o", color="C3", label=f"threshold {threshold:.3f}")
        ax.grid(alpha=0.3)
        ax.legend(loc="lower left")
    save_figure(fig, path)
    plt.close(fig)


def contact_sheet(frame: pd.DataFrame, images_dir: Path, captions: dict[str, list[str]], path: Path) -> int:
    """The most confident false alarms as a grid with probability and first caption; returns how many."""
    alarms = frame[~frame["label"]].nlargest(SHEET_PHOTOS, "probability")
    rows = max(1, int(np.ceil(len(alarms) / SHEET_COLUMNS)))
    fig, axes = plt.subplots(rows, SHEET_COLUMNS, figsize=(3.0 * SHEET_COLUMNS, 3.1 * rows), squeeze=False)
    for ax in axes.ravel():
        ax.axis("off")
    for ax, (_, row) in zip(axes.ravel(), alarms.iterrows()):
        try:
            ax.imshow(read_image(images_dir / row["image"]))
        except (FileNotFoundError, ImageReadError):
            ax.text(0.5, 0.5, "unreadable", ha="center", va="center")
        caption = (captions.get(row["image"]) or ["(no caption of its own)"])[0]
        title = f"p={row['probability']:.3f}\n" + "\n".join(textwrap.wrap(caption, 34)[:2])
        ax.set_title(title, fontsize=8, loc="left")
    fig.suptitle("Most confident false alarms (harmless by their captions, out-of-fold)")
    save_figure(fig, path, dpi=90)
    plt.close(fig)
    return len(alarms)


def misses_table(frame: pd.DataFrame, threshold: float, captions: dict[str, list[str]]) -> str:
    """Child photos below the threshold, lowest first, with their captions (blocked ones in bold)."""
    misses = frame[frame["label"] & (frame["probability"] < threshold)].sort_values("probability")
    rows = [
        [row["image"], f"{row['probability']:.4f}",
         "<br>".join(f"**{c}**" if is_blocked(c) else c for c in captions.get(row["image"], [])) or "(crowd-confirmed)"]
        for _, row in misses.iterrows()
    ]
    return markdown_table(["image", "probability", "captions (blocked ones bold)"], rows) if rows else "None."


def write_child_report(artifacts: Path, dataset: Dataset, out: Path) -> Path:
    """Write ``out/child.md``, ``child_curves.png`` and ``child_false_alarms.png``; returns the Markdown path."""
    artifacts, out = Path(artifacts), Path(out)
    frame = load_child_predictions(artifacts)
    metrics = json.loads((artifacts / METRICS).read_text(encoding="utf-8"))["child_detector"]
    threshold = float(metrics["threshold"])
    out.mkdir(parents=True, exist_ok=True)
    points = curve(frame)
    flagged = frame["probability"] >= threshold
    at = pd.Series({
        "recall": float((flagged & frame["label"]).sum() / frame["label"].sum()),
        "precision": float((flagged & frame["label"]).sum() / max(flagged.sum(), 1)),
        "hidden": float(flagged.mean()),
    })
    plot_curves(points, threshold, at, out / "child_curves.png")
    captions = captions_by_image(dataset)
    shown = contact_sheet(frame, dataset.train_images_dir, captions, out / "child_false_alarms.png")
    table = markdown_table(
        ["recall", "threshold", "precision", "hidden"],
        [[f"{r:.2f}", f"{p.threshold:.4f}", f"{p.precision:.3f}", f"{p.hidden:.3f}"]
         for r in (0.8, 0.9, 0.95, 0.98, 0.99, 1.0) for p in [points[points["recall"] >= r].iloc[-1]]],
    )
    text = "\n".join([
        "# Child-image detector", "",
        f"Out-of-fold probabilities of {len(frame)} training images ({int(frame['label'].sum())} child photos "
        f"by their captions), averaged over the training run's repeated folds. Threshold {threshold:.4f}: "
        f"recall {at['recall']:.3f}, precision {at['precision']:.3f}, {at['hidden']:.1%} of all photos hidden.", "",
        "![precision-recall and hidden share](child_curves.png)", "",
        "The highest threshold that reaches each recall:", "", table, "",
        "## Child photos cross-validation misses", "", misses_table(frame, threshold, captions), "",
        "## Most confident false alarms", "",
        f"The {shown} harmless photos (by their captions) with the highest probability: the last the review "
        "queue reaches, and where the detector's idea of a child is most wrong, or the captions are.", "",
        "![false alarms](child_false_alarms.png)", "",
    ])
    path = out / "child.md"
    write_bytes(path, text.encode("utf-8"))
    return path
