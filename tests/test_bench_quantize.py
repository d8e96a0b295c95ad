"""bench.quantize: the fixed caption sample, and the per-backend figures against the baseline."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from picsearch.bench.quantize import bench_backends, caption_sample
from picsearch.encoders import TEXT_ENCODERS, register_text_encoder
from synthetic_bundle import WordEncoder


class BlurredWords(WordEncoder):
    """The word stub, each vector blended with itself shifted by one column (weight ``blur``): agreement < 1."""

    def __init__(self, blur: float) -> None:
        self.blur = blur

    def encode(self, texts):
        exact = super().encode(texts)
        mixed = (1 - self.blur) * exact + self.blur * np.roll(exact, 1, axis=1)
        return mixed / np.linalg.norm(mixed, axis=1, keepdims=True)


def test_the_caption_sample_is_fixed_distinct_and_bounded() -> None:
    train = pd.DataFrame({"query_text": [f"caption {i % 40} " for i in range(200)]})
    sample = caption_sample(train, 10)
    assert sample == caption_sample(train, 10) and len(set(sample)) == 10 and all(s == s.strip() for s in sample)
    assert len(caption_sample(train, 1000)) == 40


def test_backends_are_compared_with_the_first(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr("picsearch.encoders.TEXT_ENCODERS", dict(TEXT_ENCODERS))
    register_text_encoder("test-blurred", lambda source=None: BlurredWords(float(source)))
    rows = bench_backends("test-blurred", ["0", "0.5"], ["a dog on grass", "a red car", "two cats", "snow"])
    assert rows["0"]["min_cosine"] == pytest.approx(1.0) and rows["0"]["speedup_p50"] == 1.0
    assert 0 < rows["0.5"]["min_cosine"] <= rows["0.5"]["mean_cosine"] < 0.99
    assert all(row["p90_ms"] >= row["p50_ms"] > 0 for row in rows.values())
