"""The child-detector lever benchmark on synthetic signals: out-of-fold levers, the product's threshold rule,
multiple-instance crop scores and the per-tile cache encoder."""

from __future__ import annotations

import numpy as np

from picsearch.bench.child_levers import Signals, TileViews, crop_max, lever_cv, table
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
    return Signals(tiles.mean(axis=1), tiles, {"face": crops}, owner, labels, np.arange(n))


def test_every_lever_keeps_recall_and_the_table_pairs_them_with_base() -> None:
    signals = synthetic_signals()
    results = lever_cv(signals, LAYOUT, seeds=[0], stack=True)
    assert {"base", "views", "tile_max", "mean(base,face)", "stack(logreg)", "stack(lightgbm)"} <= set(results)
    for runs in results.values():
        assert len(runs) == 1 and all(run["recall"] >= 0.99 for run in runs)
    base = np.mean([run["harmless_hidden"] for run in results["base"]])
    assert base < 0.9  # the signal is learnable: not everything is hidden
    assert np.mean([run["auc"] for run in results["tile_max"]]) > 0.75  # the child tile alone carries it
    assert table(results, [0]).row_count == len(results)


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
    id, dim, tiles = "stub-3tiles-v1", 2, 3

    def preprocess(self, image):
        return image

    def encode_views(self, views: np.ndarray) -> np.ndarray:
        return views[:, :2] * 10


def test_tile_views_keeps_each_tile_vector_under_its_own_cache_id() -> None:
    views = TileViews(StubFused())  # type: ignore[arg-type]
    assert views.id == "stub-3tiles-views-v1" and views.dim == 6
    batch = np.arange(2 * 3 * 4, dtype=np.float32).reshape(2, 3, 4)
    np.testing.assert_array_equal(views.encode_arrays(batch), (batch[:, :, :2] * 10).reshape(2, 6))
