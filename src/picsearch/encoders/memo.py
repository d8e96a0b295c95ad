"""A small LRU of query vectors in front of a text encoder: a repeated query skips the model."""

from __future__ import annotations

import threading
from collections import OrderedDict
from typing import Sequence

import numpy as np

from picsearch.encoders.base import TextEncoder


class CachedTextEncoder:
    """``encoder`` with the vectors of its last ``size`` distinct texts remembered (same id, same vectors)."""

    def __init__(self, encoder: TextEncoder, size: int = 1024) -> None:
        if size < 1:
            raise ValueError(f"query vector cache size must be at least 1, got {size}")
        self.encoder, self.size = encoder, size
        self.id, self.dim = encoder.id, encoder.dim
        self._vectors: OrderedDict[str, np.ndarray] = OrderedDict()
        self._lock = threading.Lock()

    def encode(self, texts: Sequence[str]) -> np.ndarray:
        """Texts -> (N, dim) float32; only the texts not remembered reach the encoder, in one call."""
        with self._lock:
            missing = [text for text in dict.fromkeys(texts) if text not in self._vectors]
        fresh = dict(zip(missing, self.encoder.encode(missing))) if missing else {}
        with self._lock:
            rows = [fresh[text] if text in fresh else self._vectors[text] for text in texts]
            for text in texts:
                self._vectors[text] = fresh.get(text, self._vectors.get(text))
                self._vectors.move_to_end(text)
            while len(self._vectors) > self.size:
                self._vectors.popitem(last=False)
        return np.stack(rows).astype(np.float32) if rows else np.zeros((0, self.dim), dtype=np.float32)
