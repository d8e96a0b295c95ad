import numpy as np
import pytest

from picsearch.models.export import nest, unnest
from picsearch.models.vectors import rowwise_cosine
from picsearch.models.matching import (
    CaptionTransferMatcher, ClassBridgeMatcher, ImageLayout, ImageTransferMatcher, JointSpace, RidgeMatcher,
    SharedSpaceMatcher, TwoTowerMatcher, restore_matcher, soft_nearest_mean,
)
from synthetic_models import CLASSES, LAYOUT, TEXT_DIM, synthetic_training_set

DATA = synthetic_training_set()
IMAGES, TEXTS = DATA.positive_feats()
CLASS_TEXTS = np.random.default_rng(3).normal(size=(CLASSES, TEXT_DIM)).astype(np.float32)


def matchers():
    return [
        RidgeMatcher(LAYOUT, alpha=1.0),
        TwoTowerMatcher(LAYOUT, dim=8, epochs=100, lr=1e-2, batch_size=16, dropout=0.0),
        CaptionTransferMatcher(LAYOUT, k=5),
        ImageTransferMatcher(LAYOUT, k=5),
        ClassBridgeMatcher(LAYOUT, CLASS_TEXTS),
        SharedSpaceMatcher(ImageLayout((0, TEXT_DIM))),
    ]


@pytest.mark.parametrize("matcher", matchers(), ids=lambda m: m.kind)
def test_embeddings_are_unit_rows_and_restore_exactly(matcher) -> None:
    matcher.fit(IMAGES[:40], TEXTS[:40])
    for emb in (matcher.embed_image(IMAGES[40:]), matcher.embed_text(TEXTS[40:])):
        assert emb.dtype == np.float32
        np.testing.assert_allclose(np.linalg.norm(emb, axis=1), 1.0, atol=1e-5)
    again = restore_matcher(matcher.export())
    np.testing.assert_array_equal(again.embed_image(IMAGES[40:]), matcher.embed_image(IMAGES[40:]))
    np.testing.assert_array_equal(again.embed_text(TEXTS[40:]), matcher.embed_text(TEXTS[40:]))


@pytest.mark.parametrize("matcher", matchers()[:4], ids=lambda m: m.kind)
def test_fitted_matchers_rank_the_own_caption_of_unseen_images_high(matcher) -> None:
    matcher.fit(IMAGES[:45], TEXTS[:45])
    sims = matcher.embed_text(TEXTS[45:]) @ matcher.embed_image(IMAGES[45:]).T
    ranks = (sims > np.diag(sims)[:, None]).sum(axis=1)
    assert np.mean(ranks < 3) > 0.5  # chance is 3/15


def test_soft_nearest_mean_weights_the_k_most_similar_values_by_softmax() -> None:
    sims = np.array([[0.9, 0.1, 0.8], [0.0, 0.5, 0.2]])
    values = np.array([[1.0, 0.0], [0.0, 1.0], [0.0, 2.0]])
    got = soft_nearest_mean(sims, values, k=2, temperature=0.1)
    w = 1 / (1 + np.exp(-1.0))  # softmax of (0.9, 0.8) / 0.1 gives the first e / (e + 1)
    expected = np.array([w, 2 * (1 - w)]) / np.hypot(w, 2 * (1 - w))
    np.testing.assert_allclose(got[0], expected, rtol=1e-6)
    np.testing.assert_allclose(got[1], [0.0, 1.0], atol=1e-6)  # the 2 nearest, 0.5 and 0.2, both point along y
    np.testing.assert_allclose(soft_nearest_mean(sims, values, k=1, temperature=0.1), [[1.0, 0.0], [0.0, 1.0]])


def test_image_transfer_maps_a_training_caption_to_the_images_it_describes() -> None:
    matcher = ImageTransferMatcher(LAYOUT, k=1).fit(IMAGES, TEXTS)
    described = np.flatnonzero((TEXTS == TEXTS[0]).all(axis=1))
    expected = matcher.embed_image(IMAGES[described]).sum(axis=0)
    np.testing.assert_allclose(matcher.embed_text(TEXTS[:1])[0], expected / np.linalg.norm(expected), atol=1e-5)


def test_layout_inputs_take_sqrt_of_probs() -> None:
    layout = ImageLayout.from_fields({"pooled": (0, 2), "probs": (2, 4)}, 4)
    x = np.array([[1.0, 2.0, 0.25, 0.75]], dtype=np.float32)
    np.testing.assert_allclose(layout.inputs(x), [[1.0, 2.0, 5.0, 10.0 * np.sqrt(0.75)]], rtol=1e-6)
    assert ImageLayout.from_fields({}, 3).inputs(x[:, :3]).shape == (1, 3)
    with pytest.raises(ValueError, match="probs"):
        ImageLayout.from_fields({}, 3).probs_of(x)


def test_joint_space_cosine_is_weighted_mean_of_matcher_cosines() -> None:
    a, b = RidgeMatcher(LAYOUT, 1.0).fit(IMAGES, TEXTS), CaptionTransferMatcher(LAYOUT, k=5).fit(IMAGES, TEXTS)
    joint = JointSpace({"a": a, "b": b}, {"a": 3.0, "b": 1.0})
    got = np.einsum("nd,nd->n", joint.embed_image(IMAGES), joint.embed_text(TEXTS))
    cosines = [rowwise_cosine(m.embed_image(IMAGES), m.embed_text(TEXTS)) for m in (a, b)]
    np.testing.assert_allclose(got, 0.75 * cosines[0] + 0.25 * cosines[1], atol=1e-5)
    with pytest.raises(ValueError, match="must name"):
        JointSpace({"a": a}, {"zzz": 1.0})


def test_nest_round_trip_keeps_parts_apart() -> None:
    parts = {name: m.fit(IMAGES, TEXTS).export() for name, m in (("r", RidgeMatcher(LAYOUT)), ("c", CaptionTransferMatcher(LAYOUT)))}
    back = unnest(nest(parts, {"x": 1}))
    assert set(back) == {"r", "c"}
    for name in parts:
        assert back[name].params == parts[name].params
        assert back[name].arrays.keys() == parts[name].arrays.keys()


class CountingRidge(RidgeMatcher):
    fits = 0

    def fit(self, image_feats, text_feats):
        type(self).fits += 1
        return super().fit(image_feats, text_feats)


def test_the_memo_fits_each_distinct_input_once_and_a_failure_not_at_all() -> None:
    from concurrent.futures import ThreadPoolExecutor

    from picsearch.models.matching import MatcherMemo

    CountingRidge.fits = 0
    factories, memo = {"ridge": lambda: CountingRidge(LAYOUT, 1.0)}, MatcherMemo()
    with ThreadPoolExecutor(4) as pool:
        sets = list(pool.map(lambda _: memo.fit(factories, IMAGES, TEXTS), range(8)))
    assert CountingRidge.fits == 1 and all(s is sets[0] for s in sets)
    memo.fit(factories, IMAGES[:30], TEXTS[:30])
    memo.fit({"ridge": lambda: CountingRidge(LAYOUT, 1.0)}, IMAGES, TEXTS)  # other factories: fitted anew
    assert CountingRidge.fits == 3
    attempts: list[int] = []

    def flaky() -> RidgeMatcher:
        attempts.append(1)
        if len(attempts) == 1:
            raise MemoryError("out of memory")
        return RidgeMatcher(LAYOUT, 1.0)

    flaky_factories = {"ridge": flaky}
    with pytest.raises(MemoryError):
        memo.fit(flaky_factories, IMAGES, TEXTS)
    assert memo.fit(flaky_factories, IMAGES, TEXTS)["ridge"].coef_.shape[1] == TEXT_DIM  # tried again, not replayed
