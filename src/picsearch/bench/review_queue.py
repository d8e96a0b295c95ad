"""Review-queue benchmark: how many flagged photos an operator looks at to restore 90% of the harmless ones.

``python -m picsearch.bench.review_queue --model ARTIFACTS [--index INDEX] [--data DIR] [--cache DIR]``

Each queue order (probability alone, or with near-duplicates grouped at a cosine) is walked from the
top until ``--share`` of the harmless flagged photos are restored; the table gives the photos looked
at, the child photos among them, and the ratio to probability order measured in the same run.

- **Training CV** (choose here): the detector's out-of-fold probabilities of the training images
  (``child_cv_predictions.csv``), flagged at the trained threshold, labels from their captions.
- **Index** (report once, never tune): the queue of ``--index`` as `picsearch review` orders it,
  labels from the test captions (`test_queries.csv`) of the indexed photos.
"""

from __future__ import annotations

import argparse
import json
import math
from pathlib import Path

import numpy as np
from rich.console import Console
from rich.table import Table

from picsearch.bench.common import data_dir
from picsearch.data import load_dataset
from picsearch.index.desk import ReviewDesk, duplicate_groups, queue_order
from picsearch.models.artifacts import METRICS
from picsearch.policy import is_blocked

COSINES = (None, 0.98, 0.95, 0.9)  # None: no grouping, the baseline


def restore_cost(child_in_order: np.ndarray, share: float) -> dict[str, float]:
    """Walk a queue (True = child photo) until ``share`` of its harmless photos are restored."""
    child = np.asarray(child_in_order, dtype=bool)
    harmless = int((~child).sum())
    needed = math.ceil(share * harmless)
    looked = int(np.searchsorted(np.cumsum(~child), needed) + 1) if needed else 0
    return {"flagged": len(child), "harmless": harmless, "restored": needed, "looked": looked,
            "child_seen": looked - needed, "per_restored": looked / max(needed, 1)}


def order_costs(probability: np.ndarray, features: np.ndarray, child: np.ndarray, share: float) -> dict:
    """:func:`restore_cost` of the queue order at each of :data:`COSINES`."""
    costs = {}
    for cosine in COSINES:
        groups = np.arange(len(probability)) if cosine is None else duplicate_groups(features, cosine)
        order = queue_order(probability, groups)
        costs["probability" if cosine is None else f"grouped at {cosine}"] = {
            **restore_cost(child[order], share), "groups": len(set(groups.tolist()))}
    return costs


def training_cv(model: Path, data: Path, cache: Path | None, share: float) -> dict:
    """Costs on the training images the detector flags out of fold."""
    import pandas as pd

    from picsearch.features.embed import dataset_features
    from picsearch.models import RelevanceBundle
    from picsearch.models.child import CHILD_PREDICTIONS

    frame = pd.read_csv(model / CHILD_PREDICTIONS)
    threshold = json.loads((model / METRICS).read_text(encoding="utf-8"))["child_detector"]["threshold"]
    flagged = frame[frame["probability"] >= threshold]
    bundle = RelevanceBundle.load(model)
    feats = dataset_features(load_dataset(data), bundle.image_encoder, bundle.text_encoder, cache)
    vectors = feats.images(flagged["image"].tolist())
    return order_costs(flagged["probability"].to_numpy(), vectors, flagged["label"].astype(bool).to_numpy(), share)


def index_queue(index: Path, data: Path, share: float) -> dict:
    """Costs on the queue of ``index``; a photo is a child photo when one of its test captions is blocked."""
    queries = load_dataset(data).test_queries
    blocked = set(queries.loc[queries["query_text"].map(is_blocked), "image"])
    desk = ReviewDesk.open(index)
    rows = desk.index.rows()
    pending = [rows[item.id] for item in desk.queue(2.0).items]  # every flagged photo, no grouping
    child = np.array([Path(desk.index.paths[row]).name in blocked for row in pending])
    probability = np.asarray(desk.index.child_prob, dtype=np.float64)[pending]
    return order_costs(probability, np.asarray(desk.index.rerank[pending]), child, share)


def table(title: str, costs: dict) -> Table:
    out = Table(title=title, title_justify="left")
    for name in ("order", "groups", "flagged", "harmless", "restored", "looked", "child seen", "looked/restored",
                 "vs probability"):
        out.add_column(name, justify="left" if name == "order" else "right")
    base = costs["probability"]["looked"]
    for name, c in costs.items():
        out.add_row(name, str(c["groups"]), str(c["flagged"]), str(c["harmless"]), str(c["restored"]),
                    str(c["looked"]), str(c["child_seen"]), f"{c['per_restored']:.2f}", f"{c['looked'] / base:.2f}")
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", type=Path, required=True, help="Artifacts of `picsearch train`.")
    parser.add_argument("--index", type=Path, help="An index to measure once (e.g. of test_images).")
    parser.add_argument("--data", type=Path, help="Dataset folder (else $PICSEARCH_DATA).")
    parser.add_argument("--cache", type=Path, help="Embedding cache of the model's encoders.")
    parser.add_argument("--share", type=float, default=0.9, help="Share of the harmless flagged photos to restore.")
    args = parser.parse_args()
    data = data_dir(args.data)
    console = Console()
    console.print(table("Training CV (out-of-fold flags)", training_cv(args.model, data, args.cache, args.share)))
    if args.index:
        console.print(table(f"Index {args.index} (test captions)", index_queue(args.index, data, args.share)))


if __name__ == "__main__":
    main()
