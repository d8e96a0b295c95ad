import dataclasses
import json
from pathlib import Path

import lightgbm as lgb
import numpy as np
import pytest
from safetensors.numpy import load_file

from picsearch.models import ArtifactError, EncoderMismatchError, RelevanceBundle
from picsearch.models.child import ChildDetector
from picsearch.models.concat import ConcatRidge
from picsearch.models.matching_head import MatchingHead
from picsearch.models.matching import CaptionTransferMatcher, JointSpace, RidgeMatcher
from synthetic_models import LAYOUT, synthetic_training_set

DATA = synthetic_training_set(n_images=40)


@pytest.fixture(scope="module")
def bundle() -> RelevanceBundle:
    matchers = {"ridge": lambda: RidgeMatcher(LAYOUT, 1.0), "transfer": lambda: CaptionTransferMatcher(LAYOUT, k=5)}
    head = MatchingHead(matchers, inner_folds=3, n_estimators=20).fit(DATA)
    labels = DATA.image_feats[:, 0] > 0
    child = ChildDetector(LAYOUT, c=1.0, threshold=0.4).fit(DATA.image_feats, labels)
    joint = JointSpace(head.matchers_, {"ridge": 2.0, "transfer": 1.0})
    return RelevanceBundle(head, joint, child, "enc-i", "enc-i-id-v1", "enc-t", "enc-t-id-v1", "matching_head")


def test_round_trip_gives_identical_outputs(bundle: RelevanceBundle, tmp_path: Path) -> None:
    loaded = RelevanceBundle.load(bundle.save(tmp_path / "art"))
    images, texts = DATA.pair_feats(DATA.evaluation)
    np.testing.assert_array_equal(loaded.score(images, texts), bundle.score(images, texts))
    np.testing.assert_array_equal(loaded.joint_image(images), bundle.joint_image(images))
    np.testing.assert_array_equal(loaded.joint_text(texts), bundle.joint_text(texts))
    np.testing.assert_array_equal(loaded.child_probability(images), bundle.child_probability(images))
    assert loaded.child_threshold == 0.4 and loaded.selected == "matching_head"
    assert (loaded.image_encoder, loaded.text_encoder) == ("enc-i", "enc-t")


def test_outputs_have_the_promised_shapes_and_ranges(bundle: RelevanceBundle) -> None:
    images, texts = DATA.pair_feats(DATA.evaluation)
    scores = bundle.score(images, texts)
    assert scores.shape == (len(images),) and np.all((scores >= 0) & (scores <= 1))
    assert bundle.score(images[:7], texts[:1]).shape == (7,)  # one query broadcast over candidates
    joint = bundle.joint_image(images[:5])
    assert joint.dtype == np.float32 and np.allclose(np.linalg.norm(joint, axis=1), 1, atol=1e-5)
    assert bundle.joint_text(texts[:3]).shape[1] == joint.shape[1]
    assert bundle.is_child(images).dtype == bool
    with pytest.raises(ValueError, match="3 image rows vs 2 text rows"):
        bundle.score(images[:3], texts[:2])


def test_encoder_mismatch_is_a_clear_error(bundle: RelevanceBundle) -> None:
    bundle.check_encoders("enc-i-id-v1", "enc-t-id-v1")
    with pytest.raises(EncoderMismatchError, match="trained on image encoder 'enc-i-id-v1'.*'other-v1'"):
        bundle.check_encoders("other-v1", "enc-t-id-v1")


def test_every_file_loads_without_pickle(bundle: RelevanceBundle, tmp_path: Path) -> None:
    folder = bundle.save(tmp_path / "art")
    kinds = set()
    for path in folder.iterdir():
        if path.suffix == ".json":
            json.loads(path.read_text())
        elif path.suffix == ".safetensors":
            assert load_file(str(path))
        elif path.name.endswith(".lgb.txt"):
            lgb.Booster(model_str=path.read_text())
        else:
            pytest.fail(f"unexpected artifact file {path.name}")
        kinds.add(path.suffix)
    assert {".json", ".safetensors", ".txt"} <= kinds
    assert not list(folder.glob(".*tmp*"))


def test_missing_or_foreign_folder_is_reported(tmp_path: Path) -> None:
    with pytest.raises(ArtifactError, match="model.json: not found"):
        RelevanceBundle.load(tmp_path)
    (tmp_path / "model.json").write_text('{"format": 99}')
    with pytest.raises(ArtifactError, match="field format"):
        RelevanceBundle.load(tmp_path)


def test_train_writes_a_loadable_bundle_with_its_encoders(synthetic_bundle: Path) -> None:
    from synthetic_bundle import IMAGE_ENCODER, TEXT_ENCODER, ColourEncoder, WordEncoder

    loaded = RelevanceBundle.load(synthetic_bundle)
    assert (loaded.image_encoder, loaded.text_encoder) == (IMAGE_ENCODER, TEXT_ENCODER)
    loaded.check_encoders(ColourEncoder.id, WordEncoder.id)
    metrics = json.loads((synthetic_bundle / "metrics.json").read_text())
    assert loaded.selected == metrics["selected"] and metrics["retrieval_cv"]["candidates"] > 0
    assert (synthetic_bundle / "MODEL_CARD.md").is_file()


def _with_joint(bundle: RelevanceBundle, matchers: dict, weights: dict[str, float]) -> RelevanceBundle:
    return dataclasses.replace(bundle, joint=JointSpace(matchers, weights))


@pytest.mark.parametrize("weights", [{"ridge": 2.0, "transfer": 1.0}, {"ridge": 1.0}, {"transfer": 1.0}])
def test_stored_rows_score_exactly_as_the_features_do(bundle: RelevanceBundle, weights: dict[str, float]) -> None:
    """The scorer reads the matchers it shares with the joint space from the joint vector, the rest from the
    rerank vectors, which hold nothing else: an index needs no raw features."""
    joint_bundle = _with_joint(bundle, bundle.scorer.matchers_, weights)
    layout = joint_bundle.rerank_layout
    assert set(layout.from_joint) == set(weights) and set(layout.own) == {"ridge", "transfer"} - set(weights)
    images, texts = DATA.pair_feats(DATA.evaluation)
    rerank = joint_bundle.rerank_vectors(images)
    assert rerank.shape == (len(images), sum(layout.own.values()))
    stored = joint_bundle.score_stored(joint_bundle.joint_image(images), rerank, texts)
    np.testing.assert_allclose(stored, joint_bundle.score(images, texts), atol=1e-6)
    one_query = joint_bundle.score_stored(joint_bundle.joint_image(images[:7]), rerank[:7], texts[:1])
    np.testing.assert_allclose(one_query, joint_bundle.score(images[:7], texts[:1]), atol=1e-6)


def test_a_joint_matcher_fitted_apart_is_not_read_for_the_scorer(bundle: RelevanceBundle) -> None:
    other = RidgeMatcher(LAYOUT, 50.0).fit(*DATA.positive_feats())
    joint_bundle = _with_joint(bundle, {"ridge": other}, {"ridge": 1.0})
    assert joint_bundle.rerank_layout.from_joint == {} and set(joint_bundle.rerank_layout.own) == {"ridge", "transfer"}
    images, texts = DATA.pair_feats(DATA.evaluation)
    stored = joint_bundle.score_stored(joint_bundle.joint_image(images), joint_bundle.rerank_vectors(images), texts)
    np.testing.assert_allclose(stored, joint_bundle.score(images, texts), atol=1e-6)


def test_a_scorer_of_raw_features_keeps_them_as_its_rerank_vectors(bundle: RelevanceBundle) -> None:
    ridge = dataclasses.replace(bundle, scorer=ConcatRidge(LAYOUT, alpha=10.0).fit(DATA), selected="concat_ridge")
    images, texts = DATA.pair_feats(DATA.evaluation)
    assert ridge.rerank_layout is None
    np.testing.assert_array_equal(ridge.rerank_vectors(images), images.astype(np.float32))
    stored = ridge.score_stored(ridge.joint_image(images), ridge.rerank_vectors(images), texts)
    np.testing.assert_array_equal(stored, ridge.score(images, texts))


@pytest.fixture(scope="module")
def mapped_bundle(bundle: RelevanceBundle) -> RelevanceBundle:
    """The bundle plus a second booster, learnt on noisy text vectors (as the map's would be)."""
    rng = np.random.default_rng(3)
    noisy = DATA.text_feats + rng.normal(scale=0.5, size=DATA.text_feats.shape).astype(np.float32)
    return dataclasses.replace(bundle, mapped_scorer=bundle.scorer.with_booster_for(DATA, noisy))


def test_mapped_rows_score_the_mean_of_both_boosters_and_the_others_the_scorer(mapped_bundle: RelevanceBundle) -> None:
    images, texts = DATA.pair_feats(DATA.evaluation)
    mapped = np.arange(len(images)) % 3 == 0
    english = np.clip(mapped_bundle.scorer.predict(images, texts), 0, 1)
    second = mapped_bundle.mapped_scorer.predict(images, texts)
    assert not np.allclose(second, mapped_bundle.scorer.predict(images, texts))  # the booster differs
    scores = mapped_bundle.score(images, texts, mapped)
    np.testing.assert_allclose(scores[~mapped], english[~mapped])
    mean = np.clip((mapped_bundle.scorer.predict(images, texts) + second) / 2, 0, 1)
    np.testing.assert_allclose(scores[mapped], mean[mapped])
    np.testing.assert_array_equal(mapped_bundle.score(images, texts), english)  # nothing mapped: the scorer alone
    stored = mapped_bundle.score_stored(
        mapped_bundle.joint_image(images), mapped_bundle.rerank_vectors(images), texts, mapped
    )
    np.testing.assert_allclose(stored, scores, atol=1e-6)
    one_query = mapped_bundle.score(images[:7], texts[:1], np.ones(7, dtype=bool))
    np.testing.assert_allclose(one_query, mapped_bundle.score(images[:7], np.repeat(texts[:1], 7, 0), np.ones(7, bool)))


def test_the_mapped_booster_round_trips_and_older_bundles_load_without_it(
    bundle: RelevanceBundle, mapped_bundle: RelevanceBundle, tmp_path: Path
) -> None:
    folder = mapped_bundle.save(tmp_path / "mapped")
    manifest = json.loads((folder / "model.json").read_text(encoding="utf-8"))
    assert manifest["mapped_booster"]["texts"] == {"booster": "scorer_mapped.0.lgb.txt"}
    assert "scorer_mapped.0.lgb.txt" in manifest["sha256"]
    loaded = RelevanceBundle.load(folder)
    assert loaded.mapped_scorer.matchers_ is loaded.scorer.matchers_  # one set of matchers: the index is unchanged
    images, texts = DATA.pair_feats(DATA.evaluation)
    mapped = np.ones(len(images), dtype=bool)
    np.testing.assert_array_equal(loaded.score(images, texts, mapped), mapped_bundle.score(images, texts, mapped))
    plain = RelevanceBundle.load(bundle.save(tmp_path / "plain"))
    assert plain.mapped_scorer is None
    np.testing.assert_array_equal(plain.score(images, texts, mapped), plain.score(images, texts))


def test_a_changed_mapped_booster_is_refused_by_name(mapped_bundle: RelevanceBundle, tmp_path: Path) -> None:
    folder = mapped_bundle.save(tmp_path / "art")
    path = folder / "scorer_mapped.0.lgb.txt"
    path.write_text(path.read_text(encoding="utf-8").replace("tree", "tre", 1), encoding="utf-8")
    with pytest.raises(ArtifactError, match="scorer_mapped.0.lgb.txt: changed since training"):
        RelevanceBundle.load(folder)


def test_only_queries_the_text_map_carries_count_as_mapped(bundle: RelevanceBundle) -> None:
    from picsearch.models.multilingual import TextMap

    texts = ["a dog", "собака", "собака frisbee"]
    assert bundle.mapped_queries(texts).tolist() == [False, False, False]  # no map: every query is English
    with_map = dataclasses.replace(bundle, text_map=TextMap(1.0, "multi", "m-v1", "enc-t-id-v1"))
    assert with_map.mapped_queries(texts).tolist() == [False, True, True]
