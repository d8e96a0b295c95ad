"""models.evaluate: grouped CV of the relevance models, fitted one split after another or on parallel threads."""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor

import numpy as np
import pandas as pd
import pytest

from picsearch.models.concat import ConcatMLP
from picsearch.models.evaluate import collect_cv, cross_validate, start_fits
from picsearch.models.matching import RidgeMatcher, TwoTowerMatcher
from picsearch.models.matching_head import MatchingHead
from picsearch.models.splits import grouped_folds
from synthetic_models import LAYOUT, expert_table, synthetic_training_set

DATA = synthetic_training_set(n_images=40)
EXPERT = expert_table(DATA)
FOLDS = grouped_folds(DATA.evaluation["image"], 4, seed=0)
FACTORIES = {
    "mlp": lambda: ConcatMLP(LAYOUT, hidden=8, epochs=3),
    "head": lambda: MatchingHead(
        {"ridge": lambda: RidgeMatcher(LAYOUT, 1.0), "towers": lambda: TwoTowerMatcher(LAYOUT, dim=4, epochs=3)},
        inner_folds=2, n_estimators=10,
    ),
}


@pytest.mark.parametrize("name", FACTORIES)
def test_parallel_folds_give_what_one_after_another_gives(name: str) -> None:
    """The torch models draw from their own generators: fits running side by side do not change each other."""
    factory = FACTORIES[name]
    alone = cross_validate(factory, DATA, EXPERT, FOLDS)
    with ThreadPoolExecutor(3) as pool:
        fits = start_fits(factory, DATA, FOLDS, pool) + start_fits(FACTORIES["mlp"], DATA, FOLDS, pool)
        together = collect_cv(fits[: len(FOLDS)], DATA, EXPERT, FOLDS)
    pd.testing.assert_series_equal(alone.predictions, together.predictions)
    assert alone.folds == together.folds
    assert not alone.predictions.isna().any()


def test_every_held_out_pair_is_scored_by_a_model_that_never_saw_its_image() -> None:
    seen: list[set[str]] = []

    class Spy(ConcatMLP):
        def fit(self, data):
            seen.append(set(data.pairs["image"]) | set(data.positives["image"]))
            return super().fit(data)

    cross_validate(lambda: Spy(LAYOUT, hidden=4, epochs=1), DATA, EXPERT, FOLDS)
    for trained, (_, test_rows) in zip(seen, FOLDS):
        assert not trained & set(DATA.evaluation["image"].iloc[test_rows])


def test_a_failed_fit_surfaces_where_results_are_collected() -> None:
    class Broken(ConcatMLP):
        def fit(self, data):
            raise np.linalg.LinAlgError("singular")

    with ThreadPoolExecutor(2) as pool:
        fits = start_fits(lambda: Broken(LAYOUT), DATA, FOLDS, pool)
        with pytest.raises(np.linalg.LinAlgError, match="singular"):
            collect_cv(fits, DATA, EXPERT, FOLDS)
