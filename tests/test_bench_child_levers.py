"""The child-detector lever benchmark on synthetic signals: out-of-fold levers, the product's threshold rule,
multiple-instance crop scores and the per-tile cache encoder."""

from __future__ import annotations

import numpy as np

from PIL import Image

from dataclasses import replace

from picsearch.bench.child_levers import (
    Signals, ViewVectors, age_probability, crop_max, lever_cv, table, zoom_views,
)
from picsearch.models.layout import ImageLayout

DIM = 8
LAYOUT = ImageLayout((0, DIM))


def synthetic_signals(n: int = 120, seed: int = 0) -> Signals:
    """Child photos lean along one direction; one tile of each carries the child, the others are background;
    about half the photos have a crop, child crops lean the same way."""
    rng = np.random.default_rng(seed)
    labels = rng.random(n) < 0.4
    tiles = rng.normal(size=(n, 3, DIM)).astype(np.float32)
    tiles[labels, 0, 0] += 3.0
    owner = np.flatnonzero(rng.random(n) < 0.5).repeat(2)
    crops = rng.normal(size=(len(owner), DIM)).astype(np.float32)
    crops[::2, 0] += 3.0 * labels[owner[::2]]
    return Signals(tiles.mean(axis=1), {"tile": tiles}, {"face": crops}, owner, labels, np.arange(n))


def test_every_lever_keeps_recall_and_the_table_pairs_them_with_base() -> None:
    signals = synthetic_signals()
    results = lever_cv(signals, LAYOUT, seeds=[0], stack=True)
    assert {"base", "tile_views", "tile_max", "mean(base,tile_max)", "mean(base,face)", "stack(logreg)", "stack(lightgbm)"} <= set(results)
    for runs in results.values():
        assert len(runs) == 1 and all(run["recall"] >= 0.99 for run in runs)
    base = np.mean([run["harmless_hidden"] for run in results["base"]])
    assert base < 0.9  # the signal is learnable: not everything is hidden
    assert np.mean([run["auc"] for run in results["tile_max"]]) > 0.75  # the child tile alone carries it
    assert table(results, [0]).row_count == len(results)


def with_ages(signals: Signals, seed: int = 0) -> Signals:
    """Two photos in three have a face; a child photo's youngest face is about 8, a harmless one's about 30."""
    rng = np.random.default_rng(seed)
    ages = np.where(signals.labels, rng.uniform(3, 14, len(signals.labels)), rng.uniform(18, 60, len(signals.labels)))
    return replace(signals, ages=np.where(np.arange(len(ages)) % 3 == 0, np.nan, ages))


def test_age_probability_is_nan_without_a_face_and_high_for_young_faces() -> None:
    signals = with_ages(synthetic_signals())
    photos = np.arange(len(signals.labels))
    test, train = photos[1::2], photos[::2]
    probability = age_probability(signals, train, test)
    faced = ~np.isnan(signals.ages[test])
    assert np.isnan(probability[~faced]).all() and not np.isnan(probability[faced]).any()
    child = signals.labels[test]
    assert probability[faced & child].min() > probability[faced & ~child].max()


def test_the_age_lever_is_measured_beside_base_and_in_the_stack() -> None:
    results = lever_cv(with_ages(synthetic_signals()), LAYOUT, seeds=[0], stack=True)
    assert {"mean(base,age)", "stack(logreg)"} <= set(results)
    assert np.mean([run["auc"] for run in results["mean(base,age)"]]) > np.mean([run["auc"] for run in results["base"]])


def test_crop_max_is_the_best_crop_of_each_photo_and_nan_without_one() -> None:
    signals = synthetic_signals()
    photos = np.arange(len(signals.labels))
    test = photos[::3]
    train = np.setdiff1d(photos, test)
    scores = crop_max(signals, "face", LAYOUT, train, test)
    has_crop = np.isin(test, signals.crop_owner)
    assert np.isnan(scores[~has_crop]).all() and not np.isnan(scores[has_crop]).any()
    child, harmless = has_crop & signals.labels[test], has_crop & ~signals.labels[test]
    assert scores[child].mean() > scores[harmless].mean() + 0.2


class StubFused:
    id, dim, tiles = "stub-260x3tiles-v1", 2, 3

    class large:  # noqa: N801 - stands in for the Lite2 network's attribute
        image_size = 4

    def preprocess(self, image: Image.Image) -> np.ndarray:
        return np.zeros((3, 3, 4, 4), dtype=np.float32)

    def preprocess_view(self, view: Image.Image) -> np.ndarray:
        return np.asarray(view, dtype=np.float32).transpose(2, 0, 1)

    def encode_views(self, views: np.ndarray) -> np.ndarray:
        return views.reshape(len(views), -1)[:, :2] * 10


def test_view_vectors_keep_each_view_under_its_own_cache_id() -> None:
    tiles, zoom = ViewVectors(StubFused()), ViewVectors(StubFused(), zoom=True)  # type: ignore[arg-type]
    assert (tiles.id, tiles.dim) == ("stub-260x3tiles-views-v1", 6)
    assert (zoom.id, zoom.count, zoom.dim) == ("stub-260x6zoom2-views-v1", 6, 12)
    batch = np.arange(2 * 3 * 4, dtype=np.float32).reshape(2, 3, 4)
    np.testing.assert_array_equal(tiles.encode_arrays(batch), (batch[:, :, :2] * 10).reshape(2, 6))
    assert zoom.preprocess(Image.new("RGB", (60, 40))).shape == (6, 3, 4, 4)


def test_zoom_views_cover_the_photo_at_twice_the_tile_resolution() -> None:
    array = np.zeros((40, 60, 3), dtype=np.uint8)
    array[:20, :20], array[-20:, -20:] = 255, 128  # the top-left and bottom-right 20 px squares
    views = zoom_views(Image.fromarray(array), 20)
    assert len(views) == 6 and all(view.size == (20, 20) for view in views)
    assert np.asarray(views[0]).min() == 255 and np.asarray(views[-1]).max() == 128
    tall = zoom_views(Image.fromarray(array.transpose(1, 0, 2)), 20)
    assert np.asarray(tall[0]).min() == 255 and np.asarray(tall[-1]).max() == 128
