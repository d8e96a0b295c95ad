"""The LRU of query vectors: same vectors as the encoder, repeated texts never reach it, bounded size."""

from __future__ import annotations

import numpy as np
import pytest

from picsearch.encoders.memo import CachedTextEncoder


class CountingEncoder:
    id, dim = "count-v1", 3

    def __init__(self) -> None:
        self.seen: list[list[str]] = []

    def encode(self, texts):
        self.seen.append(list(texts))
        return np.array([[len(t), t.count("a"), 1.0] for t in texts], dtype=np.float32)


def test_repeated_texts_are_answered_from_memory_with_the_same_vectors() -> None:
    inner = CountingEncoder()
    cached = CachedTextEncoder(inner, size=2)
    first = cached.encode(["a cat", "dog", "a cat"])
    assert inner.seen == [["a cat", "dog"]] and cached.id == inner.id
    np.testing.assert_array_equal(first, inner.encode(["a cat", "dog", "a cat"]))
    inner.seen.clear()
    np.testing.assert_array_equal(cached.encode(["dog"]), first[1:2])
    assert inner.seen == []
    cached.encode(["bat"])  # evicts the least recently used: "a cat"
    cached.encode(["a cat", "dog"])
    assert inner.seen == [["bat"], ["a cat"]]
    assert cached.encode([]).shape == (0, 3)


def test_the_cache_needs_room_for_one_text() -> None:
    with pytest.raises(ValueError, match="at least 1"):
        CachedTextEncoder(CountingEncoder(), size=0)
