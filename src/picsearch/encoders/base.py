"""The two encoder interfaces every model of picsearch sees images and texts through."""

from __future__ import annotations

import threading
from typing import Any, Protocol, Sequence, runtime_checkable

import numpy as np
from PIL import Image


# How an offline encoder runs its network: ONNX Runtime on a graph exported once, or PyTorch (same vectors).
BACKENDS = ("onnx", "torch")


class EncoderUnavailableError(RuntimeError):
    """An encoder's weights cannot be loaded here (e.g. a hub model offline with no local copy)."""


class SerialTokenizer:
    """A Hugging Face tokenizer that one thread calls at a time, so that a text encoder may be called from several.

    A fast tokenizer's call sets its padding and truncation state; two threads meeting there fail with
    "Already borrowed". Tokenizing is a small share of a forward pass, and the model runs outside the lock."""

    def __init__(self, tokenizer: Any) -> None:
        self.tokenizer = tokenizer
        self._lock = threading.Lock()

    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        with self._lock:
            return self.tokenizer(*args, **kwargs)


@runtime_checkable
class ImageEncoder(Protocol):
    """Turns RGB images into float32 vectors.

    ``id`` names model and preprocessing (it keys the embedding cache); ``dim`` is the vector
    length; ``fields`` names column ranges of the vector, e.g. ``{"pooled": (0, 1280),
    "probs": (1280, 2280)}``.
    """

    id: str
    dim: int
    fields: dict[str, tuple[int, int]]

    def preprocess(self, image: Image.Image) -> np.ndarray:
        """One image -> the model's input array, float32: (C, H, W), or (views, C, H, W) for an encoder that
        looks at several views of each image. Thread-safe, no model call."""

    def encode_arrays(self, batch: np.ndarray) -> np.ndarray:
        """Stacked :meth:`preprocess` outputs (N, ...) -> (N, dim) float32."""

    def encode(self, images: Sequence[Image.Image]) -> np.ndarray:
        """Images -> (N, dim) float32."""


@runtime_checkable
class TextEncoder(Protocol):
    """Turns texts into float32 vectors; ``id`` keys the cache, ``dim`` is the vector length."""

    id: str
    dim: int

    def encode(self, texts: Sequence[str]) -> np.ndarray:
        """Texts -> (N, dim) float32."""


class ConcatTextEncoder:
    """Several text encoders side by side: a text's vector is theirs joined, so a model reads what each one
    knows (e.g. two multilingual encoders that disagree on which translations are close)."""

    def __init__(self, parts: Sequence[TextEncoder]) -> None:
        self.parts = list(parts)
        self.id = "+".join(part.id for part in self.parts)
        self.dim = sum(part.dim for part in self.parts)

    def encode(self, texts: Sequence[str]) -> np.ndarray:
        if not texts:
            return np.zeros((0, self.dim), dtype=np.float32)
        return np.hstack([part.encode(texts) for part in self.parts])


def encode_images(encoder: ImageEncoder, images: Sequence[Image.Image]) -> np.ndarray:
    """Preprocess ``images`` and run them through ``encoder`` as one batch; (0, dim) when empty."""
    if not images:
        return np.zeros((0, encoder.dim), dtype=np.float32)
    return encoder.encode_arrays(np.stack([encoder.preprocess(image) for image in images]))
