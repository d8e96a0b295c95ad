"""The two encoder interfaces every model of picsearch sees images and texts through."""

from __future__ import annotations

import threading
from functools import cached_property
from pathlib import Path
from typing import Any, Protocol, Sequence, runtime_checkable

import numpy as np
from PIL import Image

from picsearch.runtime import model_workers, worker_pool


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


class SortedSentenceModel:
    """A sentence-transformers network run outside sentence-transformers: its own tokenizer, the texts in batches
    sorted by length (least padding), the vectors back in input order. Subclasses say how a batch runs (:meth:`run`).

    ``concurrent`` runs :func:`~picsearch.runtime.model_workers` batches at once (one per CPU when the entry point
    gave each one compute thread); otherwise they run one after another, on the caller's thread."""

    def __init__(self, transformer_dir: Path, max_length: int, batch_size: int = 64, concurrent: bool = False) -> None:
        self.transformer_dir, self.max_length = transformer_dir, max_length
        self.batch_size, self.concurrent = batch_size, concurrent

    @cached_property
    def tokenizer(self) -> SerialTokenizer:
        import transformers

        return SerialTokenizer(transformers.AutoTokenizer.from_pretrained(self.transformer_dir, local_files_only=True))

    def tokens(self, texts: list[str], tensors: str) -> dict[str, Any]:
        """``input_ids`` and ``attention_mask`` of ``texts``, padded to the longest, as ``tensors`` ("np", "pt")."""
        tokens = self.tokenizer(texts, padding=True, truncation=True, max_length=self.max_length, return_tensors=tensors)
        return {name: tokens[name] for name in ("input_ids", "attention_mask")}

    def run(self, texts: list[str]) -> np.ndarray:
        """One batch of texts -> (N, dim) float32 unit vectors."""
        raise NotImplementedError

    def encode(self, texts: Sequence[str]) -> np.ndarray:
        """Texts -> (N, dim) float32 unit vectors, in input order."""
        texts = [str(text).strip() for text in texts]
        order = np.argsort([-len(text) for text in texts], kind="stable")
        batches = [order[start : start + self.batch_size] for start in range(0, len(texts), self.batch_size)]
        workers = min(model_workers() if self.concurrent else 1, len(batches))
        if workers > 1:
            with worker_pool(workers, "encode") as pool:
                vectors = list(pool.map(lambda batch: self.run([texts[i] for i in batch]), batches))
        else:
            vectors = [self.run([texts[i] for i in batch]) for batch in batches]
        out = np.empty((len(texts), vectors[0].shape[1]), dtype=np.float32)
        for batch, rows in zip(batches, vectors):
            out[batch] = rows
        return out


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
