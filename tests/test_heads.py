from dataclasses import replace

import numpy as np
import pytest

from picsearch.models.heads import ConcatLGBM, ConcatMLP, ConcatRidge, MatchingHead, ranking_rows, restore_model
from picsearch.models.matching import CaptionTransferMatcher, RidgeMatcher
from synthetic_models import LAYOUT, synthetic_training_set

DATA = synthetic_training_set(n_images=50)


def models():
    matchers = {"ridge": lambda: RidgeMatcher(LAYOUT, 1.0), "transfer": lambda: CaptionTransferMatcher(LAYOUT, k=5)}
    return [
        ConcatRidge(LAYOUT, alpha=10.0),
        ConcatMLP(LAYOUT, hidden=8, epochs=5),
        ConcatLGBM(LAYOUT, n_estimators=20),
        MatchingHead(matchers, inner_folds=3, n_estimators=30),
    ]


@pytest.mark.parametrize("model", models(), ids=lambda m: m.kind)
def test_scores_in_unit_interval_and_identical_after_restore(model) -> None:
    model.fit(DATA.restrict({f"img{i}.jpg" for i in range(40)}))
    images, texts = DATA.pair_feats(DATA.evaluation)
    extreme = np.vstack([images * 50, -images * 50])  # far outside the training range
    scores = model.predict(extreme, np.vstack([texts, texts]))
    assert np.all((scores >= 0) & (scores <= 1))
    np.testing.assert_array_equal(restore_model(model.export()).predict(images, texts), model.predict(images, texts))


def test_matching_head_score_depends_on_the_picture() -> None:
    head = models()[3].fit(DATA)
    images, texts = DATA.pair_feats(DATA.evaluation)
    shuffled = images[np.random.default_rng(0).permutation(len(images))]
    assert not np.allclose(head.predict(images, texts), head.predict(shuffled, texts))


def test_matching_head_learns_the_synthetic_relation() -> None:
    train = DATA.restrict({f"img{i}.jpg" for i in range(35)})
    held = DATA.evaluation[~DATA.evaluation["image"].isin(train.pairs["image"])]
    head = models()[3].fit(train)
    predicted = head.predict(*DATA.pair_feats(held))
    assert np.corrcoef(predicted, held["exp_mean_score"])[0, 1] > 0.5


def test_ranking_rows_pair_each_positive_with_a_random_other_image() -> None:
    rows = ranking_rows(DATA.positives, weight=0.5, seed=1)
    matched, mismatched = rows[rows["target"] == 1.0], rows[rows["target"] == 0.0]
    assert len(matched) == len(DATA.positives) and 0.8 * len(matched) < len(mismatched) <= len(matched)
    own = dict(zip(DATA.positives["query_id"], DATA.positives["image"]))
    assert (mismatched["image"] != mismatched["query_id"].map(own)).all()
    assert (rows["weight"] == 0.5).all() and not rows["expert"].any()



def test_matching_head_score_never_falls_as_a_similarity_rises() -> None:
    """Even fitted on noise targets (where an unconstrained booster zigzags), more similar scores no lower."""
    noise = DATA.pairs.assign(target=np.random.default_rng(1).uniform(size=len(DATA.pairs)))
    head = models()[3].fit(replace(DATA, pairs=noise))
    steps = np.linspace(-1, 1, 201, dtype=np.float32)
    for other in np.linspace(-1, 1, 21, dtype=np.float32):
        for column in range(2):
            grid = np.full((len(steps), 2), other, dtype=np.float32)
            grid[:, column] = steps
            assert np.all(np.diff(head.booster.predict(grid)) >= -1e-12)
