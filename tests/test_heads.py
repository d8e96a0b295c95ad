import numpy as np
import pytest

from picsearch.models.heads import ConcatLGBM, ConcatMLP, ConcatRidge, MatchingHead, restore_model
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
