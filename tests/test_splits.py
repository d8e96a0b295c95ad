import numpy as np
import pytest

from picsearch.models.splits import grouped_folds, grouped_holdout, split_images

IMAGES = [f"im{i % 23}" for i in range(200)]


def test_folds_keep_every_image_on_one_side_and_cover_all_rows() -> None:
    folds = grouped_folds(IMAGES, 5, seed=1)
    assert len(folds) == 5
    tested = np.concatenate([test for _, test in folds])
    assert sorted(tested) == list(range(len(IMAGES)))
    for split in folds:
        train, test = split_images(IMAGES, split)
        assert train and test and not train & test
        assert len(split[0]) + len(split[1]) == len(IMAGES)


def test_holdout_is_image_disjoint_and_about_thirty_percent() -> None:
    split = grouped_holdout(IMAGES, 0.3, seed=0)
    train, test = split_images(IMAGES, split)
    assert not train & test
    assert len(test) == round(0.3 * 23) or abs(len(test) - 0.3 * 23) < 1


def test_same_seed_same_folds_other_seed_differs() -> None:
    a, b, c = grouped_folds(IMAGES, 5, 0), grouped_folds(IMAGES, 5, 0), grouped_folds(IMAGES, 5, 7)
    assert all(np.array_equal(x[1], y[1]) for x, y in zip(a, b))
    assert any(not np.array_equal(x[1], z[1]) for x, z in zip(a, c))


def test_too_few_images_is_a_clear_error() -> None:
    with pytest.raises(ValueError, match="at least 5 distinct images"):
        grouped_folds(["a", "b", "a"], 5)
