from dataclasses import replace

import numpy as np
import pandas as pd
import pytest

from picsearch.models.concat import ConcatLGBM, ConcatMLP, ConcatRidge
from picsearch.models.matching_head import MatchingHead
from picsearch.models.relevance import restore_model
from picsearch.models.vectors import top_k_mean
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


def test_top_k_mean_averages_the_largest_values_of_each_row() -> None:
    sims = np.array([[0.1, 0.9, 0.5, 0.7], [0.0, -1.0, 0.2, 0.4]])
    assert np.allclose(top_k_mean(sims, 2), [0.8, 0.3])
    assert np.allclose(top_k_mean(sims, 1), [0.9, 0.4])
    assert np.allclose(top_k_mean(sims, 10), sims.mean(axis=1))  # fewer values than k: all of them
    assert np.allclose(top_k_mean(sims, None), sims.mean(axis=1))


def test_matching_head_relative_similarity_is_measured_against_the_query_best_training_images() -> None:
    head = models()[3].fit(DATA.restrict({f"img{i}.jpg" for i in range(35)}))
    images, texts = DATA.pair_feats(DATA.evaluation.iloc[:7])
    features = head.features(images, texts)
    per_matcher = 1 + len(head.reference_ks)
    assert features.shape == (7, per_matcher * len(head.matchers_)) == (7, head.booster_.num_feature())
    for index, (name, matcher) in enumerate(head.matchers_.items()):
        embedded = matcher.embed_text(texts)
        sims = np.einsum("nd,nd->n", matcher.embed_image(images), embedded)
        ranked = np.sort(embedded @ head.references_[name].T, axis=1)[:, ::-1]
        column = per_matcher * index
        assert np.allclose(features[:, column], sims, atol=1e-5)
        for offset, k in enumerate(head.reference_ks, start=1):
            assert np.allclose(features[:, column + offset], sims - ranked[:, :k].mean(axis=1), atol=1e-5)


def test_matching_head_score_never_falls_as_a_similarity_rises() -> None:
    """Even fitted on noise targets (where an unconstrained booster zigzags), more similar scores no lower."""
    noise = DATA.pairs.assign(target=np.random.default_rng(1).uniform(size=len(DATA.pairs)))
    head = models()[3].fit(replace(DATA, pairs=noise))
    steps = np.linspace(-1, 1, 201, dtype=np.float32)
    n_features = head.booster_.num_feature()
    for other in np.linspace(-1, 1, 21, dtype=np.float32):
        for column in range(n_features):
            grid = np.full((len(steps), n_features), other, dtype=np.float32)
            grid[:, column] = steps
            assert np.all(np.diff(head.booster_.predict(grid)) >= -1e-12)


def test_matching_head_grid_scores_every_text_against_every_image_as_aligned_rows_do() -> None:
    head = models()[3].fit(DATA.restrict({f"img{i}.jpg" for i in range(40)}))
    images, texts = DATA.images([f"img{i}.jpg" for i in range(40, 50)]), DATA.texts(list(DATA.text_row)[:7])
    grid = head.predict_grid(images, texts, chunk=3)  # chunks that do not divide the texts
    aligned = head.predict(np.tile(images, (len(texts), 1)), np.repeat(texts, len(images), axis=0))
    assert grid.shape == (7, 10) and np.unique(grid).size > 1
    np.testing.assert_allclose(grid, aligned.reshape(7, 10), atol=1e-6)


def test_heads_sharing_a_memo_reuse_matchers_across_training_data_options() -> None:
    """Another target and extra rows (what `train`'s data options change) leave the matchers' inputs alone."""
    from picsearch.models.matching import MatcherMemo
    from test_matching import CountingRidge

    factories = {"ridge": lambda: CountingRidge(LAYOUT, 1.0)}
    # img0 has positives but no scored pair, until the crowd rows bring some
    base = replace(DATA, pairs=DATA.pairs[DATA.pairs["image"] != "img0.jpg"])
    CountingRidge.fits = 0
    alone = MatchingHead(factories, inner_folds=3, n_estimators=20).fit(base)
    assert CountingRidge.fits == 4  # three inner folds and the final fit
    memo = MatcherMemo()
    MatchingHead(factories, inner_folds=3, n_estimators=20, memo=memo).fit(base)
    extra = pd.concat([DATA.pairs.sample(20, random_state=0), DATA.pairs[DATA.pairs["image"] == "img0.jpg"]])
    extra = extra.assign(expert=False, weight=0.3)
    variant = replace(base, pairs=pd.concat([base.pairs.assign(target=base.pairs["target"] ** 2), extra]))
    reused = MatchingHead(factories, inner_folds=3, n_estimators=20, memo=memo).fit(variant)
    assert CountingRidge.fits == 8  # the variant fitted none
    images, texts = DATA.pair_feats(DATA.evaluation)
    remade = MatchingHead(factories, inner_folds=3, n_estimators=20).fit(variant)
    np.testing.assert_array_equal(reused.predict(images, texts), remade.predict(images, texts))
    assert not np.array_equal(alone.predict(images, texts), reused.predict(images, texts))


def test_a_booster_for_other_texts_keeps_the_matchers_and_fits_no_matcher_again_with_a_memo() -> None:
    """`train`'s scorer for mapped queries: the same matchers (so an index serves both), a booster of its own,
    learnt on the pairs with their texts read from another matrix; with the head's own texts, the same head."""
    from picsearch.models.matching import MatcherMemo
    from test_matching import CountingRidge

    memo = MatcherMemo()
    head = MatchingHead({"ridge": lambda: CountingRidge(LAYOUT, 1.0)}, inner_folds=3, n_estimators=20, memo=memo)
    head.fit(DATA)
    fits = CountingRidge.fits
    images, texts = DATA.pair_feats(DATA.evaluation)
    same = head.with_booster_for(DATA, DATA.text_feats)
    np.testing.assert_array_equal(same.predict(images, texts), head.predict(images, texts))
    noisy = DATA.text_feats + np.random.default_rng(0).normal(scale=0.5, size=DATA.text_feats.shape).astype(np.float32)
    other = head.with_booster_for(DATA, noisy)
    assert CountingRidge.fits == fits  # the inner folds' matchers came from the memo
    assert other.matchers_ is head.matchers_ and other.booster_ is not head.booster_
    assert not np.allclose(other.predict(images, texts), head.predict(images, texts))
    np.testing.assert_array_equal(head.predict(images, texts), same.predict(images, texts))  # the head is unchanged
