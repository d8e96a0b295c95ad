"""The trained bundle on disk (safetensors, LightGBM text, JSON; never pickle) and the object search uses."""

from __future__ import annotations

import json
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
from safetensors.numpy import load_file, save

from picsearch.models.export import Exported, nest, unnest
from picsearch.models.child import ChildDetector
from picsearch.models.relevance import RelevanceModel, restore_model
from picsearch.models.matching import JointSpace, restore_matcher
from picsearch.storage import save_json, write_bytes

FORMAT = 3
MANIFEST = "model.json"
METRICS = "metrics.json"
MODEL_CARD = "MODEL_CARD.md"


class EncoderMismatchError(ValueError):
    """Features come from other encoders than the ones the bundle was trained with."""


class ArtifactError(ValueError):
    """An artifacts folder is missing a file or has an unknown format."""


def _save_exported(folder: Path, name: str, exported: Exported) -> dict[str, Any]:
    """Arrays -> ``name.safetensors``, texts -> ``name.N.lgb.txt``; returns the JSON entry naming them."""
    entry: dict[str, Any] = {"params": exported.params, "texts": {}}
    if exported.arrays:
        arrays = {k: np.ascontiguousarray(v) for k, v in exported.arrays.items()}
        write_bytes(folder / f"{name}.safetensors", save(arrays))
        entry["arrays"] = f"{name}.safetensors"
    for number, (key, text) in enumerate(sorted(exported.texts.items())):
        filename = f"{name}.{number}.lgb.txt"
        write_bytes(folder / filename, text.encode("utf-8"))
        entry["texts"][key] = filename
    return entry


def _load_exported(folder: Path, entry: dict[str, Any]) -> Exported:
    arrays = load_file(str(folder / entry["arrays"])) if entry.get("arrays") else {}
    texts = {key: (folder / filename).read_text(encoding="utf-8") for key, filename in entry["texts"].items()}
    return Exported(entry["params"], arrays, texts)


@dataclass
class RelevanceBundle:
    """Everything search needs: joint space for candidates, relevance score for reranking, child detector."""

    scorer: RelevanceModel
    joint: JointSpace
    child: ChildDetector
    image_encoder: str
    image_encoder_id: str
    text_encoder: str
    text_encoder_id: str
    selected: str

    def check_encoders(self, image_encoder_id: str, text_encoder_id: str) -> None:
        """Raise :class:`EncoderMismatchError` unless both ids are the ones the bundle was trained with."""
        expected = (self.image_encoder_id, self.text_encoder_id)
        if (image_encoder_id, text_encoder_id) != expected:
            raise EncoderMismatchError(
                f"the models were trained on image encoder {expected[0]!r} and text encoder {expected[1]!r}, "
                f"but the features come from {image_encoder_id!r} and {text_encoder_id!r}; "
                f"re-embed with --image-encoder {self.image_encoder} --text-encoder {self.text_encoder} or retrain"
            )

    def joint_image(self, image_feats: np.ndarray) -> np.ndarray:
        """(n, d) float32, L2-normalized image vectors of the retrieval space."""
        return self.joint.embed_image(np.atleast_2d(image_feats)).astype(np.float32)

    def joint_text(self, text_feats: np.ndarray) -> np.ndarray:
        """(m, d) float32, L2-normalized text vectors of the retrieval space."""
        return self.joint.embed_text(np.atleast_2d(text_feats)).astype(np.float32)

    def score(self, image_feats: np.ndarray, text_feats: np.ndarray) -> np.ndarray:
        """Relevance in [0, 1] of image row i with text row i (a single text row is broadcast)."""
        image_feats, text_feats = np.atleast_2d(image_feats), np.atleast_2d(text_feats)
        if len(text_feats) == 1 and len(image_feats) != 1:
            text_feats = np.repeat(text_feats, len(image_feats), axis=0)
        if len(image_feats) != len(text_feats):
            raise ValueError(f"score: {len(image_feats)} image rows vs {len(text_feats)} text rows")
        return np.clip(np.asarray(self.scorer.predict(image_feats, text_feats), dtype=np.float64), 0.0, 1.0)

    def child_probability(self, image_feats: np.ndarray) -> np.ndarray:
        return self.child.probability(np.atleast_2d(image_feats))

    @property
    def child_threshold(self) -> float:
        return self.child.threshold

    def is_child(self, image_feats: np.ndarray) -> np.ndarray:
        """True for images that must never be shown."""
        return self.child_probability(image_feats) >= self.child.threshold

    def save(self, folder: str | os.PathLike) -> Path:
        """Write the model files, then ``model.json`` last (each file atomically)."""
        folder = Path(folder)
        folder.mkdir(parents=True, exist_ok=True)
        joint = nest({name: m.export() for name, m in self.joint.matchers.items()}, {"weights": self.joint.weights})
        manifest = {
            "format": FORMAT,
            "selected": self.selected,
            "image_encoder": self.image_encoder,
            "image_encoder_id": self.image_encoder_id,
            "text_encoder": self.text_encoder,
            "text_encoder_id": self.text_encoder_id,
            "scorer": _save_exported(folder, "scorer", self.scorer.export()),
            "joint": _save_exported(folder, "joint", joint),
            "child": _save_exported(folder, "child", self.child.export()),
        }
        save_json(folder / MANIFEST, manifest)
        return folder

    @classmethod
    def load(cls, folder: str | os.PathLike) -> RelevanceBundle:
        """Read a bundle written by :meth:`save` (no pickle anywhere)."""
        folder = Path(folder)
        path = folder / MANIFEST
        if not path.is_file():
            raise ArtifactError(f"{path}: not found; run `picsearch train --out {folder}` first")
        manifest = json.loads(path.read_text(encoding="utf-8"))
        if manifest.get("format") != FORMAT:
            raise ArtifactError(f"{path}: field format: expected {FORMAT}, found {manifest.get('format')!r}")
        joint = _load_exported(folder, manifest["joint"])
        matchers = {name: restore_matcher(part) for name, part in unnest(joint).items()}
        return cls(
            scorer=restore_model(_load_exported(folder, manifest["scorer"])),
            joint=JointSpace(matchers, joint.params["weights"]),
            child=ChildDetector.restore(_load_exported(folder, manifest["child"])),
            image_encoder=manifest["image_encoder"],
            image_encoder_id=manifest["image_encoder_id"],
            text_encoder=manifest["text_encoder"],
            text_encoder_id=manifest["text_encoder_id"],
            selected=manifest["selected"],
        )
