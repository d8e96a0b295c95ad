"""Relevance models: (image vectors, text vectors) -> score in [0, 1], fitted on a :class:`TrainingSet`.

Baselines see the concatenated vectors (:mod:`picsearch.models.concat`); :class:`MatchingHead` sees only
interaction features, the similarities of matching models (:mod:`picsearch.models.matching_head`).
"""

from __future__ import annotations

from typing import Protocol

import numpy as np

from picsearch.models.concat import ConcatLGBM, ConcatMLP, ConcatRidge
from picsearch.models.export import Exported
from picsearch.models.matching_head import MatchingHead
from picsearch.models.trainset import TrainingSet


class RelevanceModel(Protocol):
    """Scores aligned rows of image and text vectors."""

    kind: str

    def fit(self, data: TrainingSet) -> RelevanceModel: ...
    def predict(self, image_feats: np.ndarray, text_feats: np.ndarray) -> np.ndarray: ...
    def export(self) -> Exported: ...


MODEL_KINDS = {cls.kind: cls for cls in (ConcatRidge, ConcatMLP, ConcatLGBM, MatchingHead)}


def restore_model(exported: Exported) -> RelevanceModel:
    """Rebuild a relevance model from :meth:`export` output."""
    return MODEL_KINDS[exported.params["kind"]].restore(exported)
