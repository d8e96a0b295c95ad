"""Sentence encoders on PyTorch in bfloat16, for CPUs whose matrix units multiply it natively (AMX-BF16).

On a 2-core machine with AMX, all-mpnet-base-v2 embeds training captions in batches of 64 at 3.4x the texts/s of
ONNX Runtime in float32, each with one batch per CPU at one thread (``python -m picsearch.bench.embed --workers``),
with vectors at cosine >= 0.99996 to float on all 1,477 course texts. One query at a time it gains nothing: queries
keep the int8 graph. Elsewhere bfloat16 is emulated and slow, so
:func:`~picsearch.encoders.sentence.batch_backend` picks it only where the CPU says it has AMX-BF16."""

from __future__ import annotations

from functools import cached_property
from pathlib import Path

import numpy as np
import torch

from picsearch.encoders.base import SortedSentenceModel
from picsearch.encoders.onnx_export import PooledNormalized, sentence_layout


class Bf16SentenceModel(SortedSentenceModel):
    """The transformer, mean pooling and normalization of a sentence-transformers folder, run under bfloat16
    autocast (matrix products in bfloat16, accumulated and normalized in float32)."""

    def __init__(self, model_dir: Path, batch_size: int = 64) -> None:
        super().__init__(*sentence_layout(model_dir), batch_size)

    @cached_property
    def network(self) -> PooledNormalized:
        import transformers

        return PooledNormalized(transformers.AutoModel.from_pretrained(self.transformer_dir, local_files_only=True))

    def run(self, texts: list[str]) -> np.ndarray:
        tokens = self.tokens(texts, "pt")
        with torch.inference_mode(), torch.autocast("cpu", dtype=torch.bfloat16):
            vectors = self.network(tokens["input_ids"], tokens["attention_mask"])
        return vectors.float().numpy()  # pooled and normalized in float32 already: autocast keeps them there
