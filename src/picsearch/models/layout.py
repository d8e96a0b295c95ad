"""Where the parts of an image vector sit (:class:`ImageLayout`), and estimator hyperparameters in JSON."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Sequence

import numpy as np

PROBS_SCALE = 10.0
"""sqrt(ImageNet probs) are multiplied by this before standardization (keeps them comparable to pooled)."""


@dataclass(frozen=True)
class ImageLayout:
    """Where the pooled features and (optionally) the ImageNet probabilities sit in an image vector."""

    pooled: tuple[int, int]
    probs: tuple[int, int] | None = None

    @classmethod
    def from_fields(cls, fields: dict[str, Sequence[int]], dim: int) -> ImageLayout:
        """Layout from an encoder's ``fields``; without a ``pooled`` field the whole vector is pooled."""
        pooled = tuple(fields.get("pooled", (0, dim)))
        probs = tuple(fields["probs"]) if "probs" in fields else None
        return cls(pooled, probs)  # type: ignore[arg-type]

    def to_json(self) -> dict[str, Any]:
        return {"pooled": list(self.pooled), "probs": list(self.probs) if self.probs else None}

    @classmethod
    def from_json(cls, raw: dict[str, Any]) -> ImageLayout:
        return cls(tuple(raw["pooled"]), tuple(raw["probs"]) if raw.get("probs") else None)  # type: ignore[arg-type]

    def pooled_of(self, feats: np.ndarray) -> np.ndarray:
        return feats[:, self.pooled[0] : self.pooled[1]]

    def probs_of(self, feats: np.ndarray) -> np.ndarray:
        if self.probs is None:
            raise ValueError("image features have no 'probs' field")
        return feats[:, self.probs[0] : self.probs[1]]

    def inputs(self, feats: np.ndarray) -> np.ndarray:
        """Pooled features, followed by sqrt(probs) when the encoder has them."""
        parts = [self.pooled_of(feats)]
        if self.probs is not None:
            parts.append(np.sqrt(np.clip(self.probs_of(feats), 0.0, None)) * PROBS_SCALE)
        return np.hstack(parts).astype(np.float32)


def params_to_json(params: dict[str, Any]) -> dict[str, Any]:
    """An estimator's ``get_params()`` with its :class:`ImageLayout` as JSON."""
    return {key: value.to_json() if isinstance(value, ImageLayout) else value for key, value in params.items()}


def params_from_json(params: dict[str, Any], *skip: str) -> dict[str, Any]:
    """``__init__`` arguments from :func:`params_to_json` output, without ``kind`` and the ``skip`` keys."""
    args = {key: value for key, value in params.items() if key not in ("kind", *skip)}
    if "layout" in args:
        args["layout"] = ImageLayout.from_json(args["layout"])
    return args
