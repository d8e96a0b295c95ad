"""Sentence encoders in bfloat16: agreement with float32, batch independence, and where they are the default."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from picsearch.encoders import get_text_encoder, sentence
from picsearch.encoders.bf16 import Bf16SentenceModel
from test_onnx_export import TEXTS, TinyEncoder, _sentence_folder


@pytest.fixture(scope="module")
def tiny(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return _sentence_folder(tmp_path_factory.mktemp("tiny"))


def test_bf16_vectors_agree_with_float_in_input_order(tiny: Path) -> None:
    reference = TinyEncoder(tiny, "torch").encode(TEXTS)
    vectors = TinyEncoder(tiny, "torch-bf16").encode(TEXTS)  # batches of 2, sorted by length inside
    assert vectors.shape == (5, 16) and vectors.dtype == np.float32
    np.testing.assert_allclose(np.linalg.norm(vectors, axis=1), 1.0, atol=1e-5)
    assert np.min(np.sum(reference * vectors, axis=1)) >= 0.995
    assert np.abs(reference - vectors).max() > 1e-5  # it did run in bfloat16: float32 agrees to about 1e-7


def test_a_bf16_vector_barely_depends_on_its_batch_mates(tiny: Path) -> None:
    model = Bf16SentenceModel(tiny, batch_size=8)
    alone = np.concatenate([model.encode([text]) for text in TEXTS])
    assert np.min(np.sum(alone * model.encode(TEXTS), axis=1)) >= 0.999


@pytest.mark.parametrize(("flags", "backend"), [("avx2 avx512f avx512_vnni", "onnx"), ("amx_bf16 amx_tile", "torch-bf16"), ("", "onnx")])
def test_batches_run_in_bf16_only_where_the_cpu_multiplies_it(monkeypatch, flags: str, backend: str) -> None:
    monkeypatch.setattr(sentence, "cpu_flags", lambda: frozenset(flags.split()))
    assert sentence.batch_backend() == backend
    assert get_text_encoder("mpnet").backend == backend and get_text_encoder("minilm").backend == backend
    assert get_text_encoder("mpnet:onnx").backend == "onnx"  # a named runtime is kept
    assert get_text_encoder("minilm:torch-bf16").backend == "torch-bf16"
