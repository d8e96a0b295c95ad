"""Review-queue benchmark: how many flagged photos an operator looks at to restore 90% of the harmless ones.

``python -m picsearch.bench.review_queue --model ARTIFACTS [--index INDEX] [--data DIR] [--cache DIR]``

Each queue order (probability alone, or with near-duplicates grouped at a cosine) is walked from the
top until ``--share`` of the harmless flagged photos are restored; the table gives the photos looked
at, the child photos among them, and the ratio to probability order measured in the same run.

- **Training CV** (choose here): the detector's out-of-fold probabilities of the training images
  (``child_cv_predictions.csv``), flagged at the trained threshold, labels from their captions. A second table
  orders the queue by a second stage: the detector refitted on the flagged photos alone, at each C of its grid,
  out of fold (near-duplicate grouped 5 folds, :data:`SEEDS`), by itself and averaged in rank with the first.
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
from scipy.stats import rankdata

from picsearch.bench.common import data_dir
from picsearch.data import load_dataset
from picsearch.index.desk import ReviewDesk, duplicate_groups, queue_order
from picsearch.models.artifacts import METRICS
from picsearch.models.child import C_GRID, near_duplicate_groups, out_of_fold
from picsearch.models.layout import ImageLayout
from picsearch.policy import is_blocked

COSINES = (None, 0.98, 0.95, 0.9)  # None: no grouping, the baseline
SEEDS = range(5)


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


def second_stage_costs(
    layout: ImageLayout, probability: np.ndarray, features: np.ndarray, child: np.ndarray, share: float
) -> dict[str, list[float]]:
    """Looked per restored photo, one per seed of :data:`SEEDS`, of queues ordered by a detector learnt on the
    flagged photos alone (``features``, ``child``) at each C of :data:`~picsearch.models.child.C_GRID`,
    out of fold; alone, and averaged in rank with the first stage's ``probability``."""
    groups = near_duplicate_groups(layout.pooled_of(features))
    first = rankdata(probability)
    costs: dict[str, list[float]] = {}
    for c in C_GRID:
        for seed in SEEDS:
            second = out_of_fold(layout, features, child, c, 5, seed, groups=groups)[0][0]
            for name, score in ((f"C {c:g}", second), (f"C {c:g}, rank mean", rankdata(second) + first)):
                order = np.argsort(score, kind="stable")
                costs.setdefault(name, []).append(restore_cost(child[order], share)["per_restored"])
    return costs


def training_cv(model: Path, data: Path, cache: Path | None, share: float) -> tuple[dict, dict[str, list[float]]]:
    """Costs on the training images the detector flags out of fold, in the queue orders of :func:`order_costs`
    and of :func:`second_stage_costs`."""
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
    probability, child = flagged["probability"].to_numpy(), flagged["label"].astype(bool).to_numpy()
    return (
        order_costs(probability, vectors, child, share),
        second_stage_costs(bundle.child.layout, probability, vectors, child, share),
    )


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


def second_stage_table(costs: dict[str, list[float]], base: float) -> Table:
    out = Table(title=f"Training CV, second-stage orders (mean ± sd over {len(SEEDS)} seeds)", title_justify="left")
    for name in ("second stage", "looked/restored", "vs probability"):
        out.add_column(name, justify="left" if name == "second stage" else "right")
    for name, values in costs.items():
        out.add_row(name, f"{np.mean(values):.3f} ± {np.std(values):.3f}", f"{np.mean(values) / base:.2f}")
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
    costs, second_stage = training_cv(args.model, data, args.cache, args.share)
    console.print(table("Training CV (out-of-fold flags)", costs))
    console.print(second_stage_table(second_stage, costs["probability"]["per_restored"]))
    if args.index:
        console.print(table(f"Index {args.index} (test captions)", index_queue(args.index, data, args.share)))


if __name__ == "__main__":
    main()
