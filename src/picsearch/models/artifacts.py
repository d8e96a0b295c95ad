"""The trained bundle on disk (safetensors, LightGBM text, JSON; never pickle) and the object search uses."""

from __future__ import annotations

import hashlib
import os
from dataclasses import dataclass
from functools import cached_property
from pathlib import Path
from typing import Any, Callable, Sequence, TypeVar

import lightgbm as lgb
import numpy as np
from safetensors import SafetensorError
from safetensors.numpy import load_file, save

from picsearch.encoders import TextEncoder, get_text_encoder, query_encoder_name
from picsearch.models.export import Exported, nest, unnest
from picsearch.models.child import ChildDetector
from picsearch.models.relevance import RelevanceModel, restore_model
from picsearch.models.matching import JointSpace, Matcher, restore_matcher
from picsearch.models.matching_head import MatchingHead
from picsearch.models.multilingual import MappedTextEncoder, TextMap, needs_map, restore_text_map
from picsearch.storage import file_sha256, load_json, save_json, write_bytes

FORMAT = 3
MANIFEST = "model.json"
METRICS = "metrics.json"
MODEL_CARD = "MODEL_CARD.md"


class EncoderMismatchError(ValueError):
    """Features come from other encoders than the ones the bundle was trained with."""


class ArtifactError(ValueError):
    """An artifacts folder is missing a file, has a broken or changed one, or has an unknown format."""


T = TypeVar("T")


def _save_exported(folder: Path, name: str, exported: Exported, hashes: dict[str, str]) -> dict[str, Any]:
    """Arrays -> ``name.safetensors``, texts -> ``name.N.lgb.txt``; returns the JSON entry naming them.

    The sha256 of each file written goes into ``hashes`` (file name -> hex digest)."""
    entry: dict[str, Any] = {"params": exported.params, "texts": {}}
    files: dict[str, bytes] = {}
    if exported.arrays:
        entry["arrays"] = f"{name}.safetensors"
        files[entry["arrays"]] = save({k: np.ascontiguousarray(v) for k, v in exported.arrays.items()})
    for number, (key, text) in enumerate(sorted(exported.texts.items())):
        entry["texts"][key] = f"{name}.{number}.lgb.txt"
        files[entry["texts"][key]] = text.encode("utf-8")
    for filename, data in files.items():
        write_bytes(folder / filename, data)
        hashes[filename] = hashlib.sha256(data).hexdigest()
    return entry


def _checked_file(folder: Path, filename: str, hashes: dict[str, str]) -> Path:
    """``folder / filename``, which must exist and, when ``model.json`` recorded its sha256, still match it."""
    path = folder / filename
    if not path.is_file():
        raise ArtifactError(f"{path}: missing (listed in {MANIFEST})")
    if filename in hashes and file_sha256(path) != hashes[filename]:
        raise ArtifactError(
            f"{path}: changed since training (its sha256 differs from the one in {MANIFEST}); "
            "restore the file or retrain"
        )
    return path


def _read_arrays(path: Path) -> dict[str, np.ndarray]:
    try:
        return load_file(str(path))
    except SafetensorError as exc:
        raise ArtifactError(f"{path}: not a readable safetensors file ({exc})") from None


def _read_text(path: Path) -> str:
    try:
        return path.read_text(encoding="utf-8")
    except UnicodeDecodeError as exc:
        raise ArtifactError(f"{path}: not a LightGBM model text (not UTF-8 at byte {exc.start})") from None


def _load_exported(folder: Path, entry: dict[str, Any], hashes: dict[str, str]) -> Exported:
    arrays = _read_arrays(_checked_file(folder, entry["arrays"], hashes)) if entry.get("arrays") else {}
    texts = {key: _read_text(_checked_file(folder, name, hashes)) for key, name in entry["texts"].items()}
    return Exported(entry["params"], arrays, texts)


def _text_map(folder: Path, manifest: dict[str, Any], hashes: dict[str, str]) -> TextMap | None:
    """The bundle's multilingual text map, if it has one (checked like every other part)."""
    if "text_map" not in manifest:
        return None
    part = _load_exported(folder, manifest["text_map"], hashes)
    return _restored(folder, manifest["text_map"], lambda: restore_text_map(part))


def _mapped_scorer(folder: Path, manifest: dict[str, Any], hashes: dict[str, str], scorer: RelevanceModel
                   ) -> MatchingHead | None:
    """The scorer with the booster learnt on mapped captions, if the bundle has one (checked like every part)."""
    if "mapped_booster" not in manifest or not isinstance(scorer, MatchingHead):
        return None
    part = _load_exported(folder, manifest["mapped_booster"], hashes)
    return _restored(
        folder, manifest["mapped_booster"], lambda: scorer.with_booster(lgb.Booster(model_str=part.texts["booster"]))
    )


def _restored(folder: Path, entry: dict[str, Any], restore: Callable[[], T]) -> T:
    """``restore()``, with any failure turned into an :class:`ArtifactError` naming the entry's files."""
    try:
        return restore()
    except lgb.basic.LightGBMError as exc:
        files = ", ".join(str(folder / name) for name in entry["texts"].values())
        raise ArtifactError(f"{files}: not a readable LightGBM model ({exc})") from None
    except (KeyError, IndexError, TypeError, ValueError) as exc:
        files = ", ".join(str(folder / name) for name in [entry.get("arrays"), *entry["texts"].values()] if name)
        raise ArtifactError(f"{files or folder / MANIFEST}: not the model {MANIFEST} describes ({exc!r})") from None


@dataclass(frozen=True)
class RerankLayout:
    """Where the scorer finds an image's vectors in an index: ``from_joint``, the matchers it shares with the
    joint space (name -> ``[start, stop)`` and scale of their block in a joint vector, :attr:`JointSpace.blocks`);
    ``own``, the others (name -> width), concatenated in this order as the rerank vectors."""

    from_joint: dict[str, tuple[int, int, float]]
    own: dict[str, int]

    def to_json(self) -> dict[str, Any]:
        return {"from_joint": {name: list(block) for name, block in self.from_joint.items()}, "own": self.own}


def _same_matcher(a: Matcher, b: Matcher) -> bool:
    """Whether two fitted matchers are the same model (equal hyperparameters and fitted arrays)."""
    left, right = a.export(), b.export()
    return left.params == right.params and left.arrays.keys() == right.arrays.keys() and all(
        np.array_equal(left.arrays[key], right.arrays[key]) for key in left.arrays
    )


def _aligned(image_rows: int, text_feats: np.ndarray) -> np.ndarray:
    """``text_feats`` with one row per image row (a single text row is broadcast)."""
    text_feats = np.atleast_2d(text_feats)
    if len(text_feats) == 1 and image_rows != 1:
        text_feats = np.repeat(text_feats, image_rows, axis=0)
    if image_rows != len(text_feats):
        raise ValueError(f"score: {image_rows} image rows vs {len(text_feats)} text rows")
    return text_feats


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
    text_map: TextMap | None = None
    """Map from a multilingual encoder into the text encoder's space, for queries it cannot read (optional)."""
    mapped_scorer: MatchingHead | None = None
    """The scorer's matchers with a booster learnt on the map's (out-of-fold) vectors of the training captions
    (optional): a query that came through :attr:`text_map` is scored by the mean of both. In the multilingual
    benchmark's CV it took the Russian queries' score gap to their English originals 0.116 -> 0.087 and R@5
    0.660 -> 0.667. Distilling its booster (learnt on the scorer's own scores of the pairs, not the humans')
    left the gap at 0.087 and R@5 at 0.663: the map's error, not the booster, sets what is left."""

    def check_encoders(self, image_encoder_id: str, text_encoder_id: str) -> None:
        """Raise :class:`EncoderMismatchError` unless both ids are the ones the bundle was trained with."""
        expected = (self.image_encoder_id, self.text_encoder_id)
        if (image_encoder_id, text_encoder_id) != expected:
            raise EncoderMismatchError(
                f"the models were trained on image encoder {expected[0]!r} and text encoder {expected[1]!r}, "
                f"but the features come from {image_encoder_id!r} and {text_encoder_id!r}; "
                f"re-embed with --image-encoder {self.image_encoder} --text-encoder {self.text_encoder} or retrain"
            )

    def query_encoder(self) -> TextEncoder:
        """The encoder queries go through: the trained text encoder (on its runtime for one query at a time,
        :func:`~picsearch.encoders.query_encoder_name`), behind :class:`MappedTextEncoder` when the
        bundle has a text map (the multilingual encoder loads at the first query that needs it)."""
        english = get_text_encoder(query_encoder_name(self.text_encoder))
        if self.text_map is None:
            return english
        return MappedTextEncoder(english, get_text_encoder(self.text_map.source), self.text_map)

    def joint_image(self, image_feats: np.ndarray) -> np.ndarray:
        """(n, d) float32, L2-normalized image vectors of the retrieval space."""
        return self.joint.embed_image(np.atleast_2d(image_feats)).astype(np.float32)

    def joint_text(self, text_feats: np.ndarray) -> np.ndarray:
        """(m, d) float32, L2-normalized text vectors of the retrieval space."""
        return self.joint.embed_text(np.atleast_2d(text_feats)).astype(np.float32)

    def mapped_queries(self, texts: Sequence[str]) -> np.ndarray:
        """Which of ``texts`` reach the models through :attr:`text_map` (bool per text; none without a map)."""
        return np.array([self.text_map is not None and needs_map(text) for text in texts], dtype=bool)

    def score(self, image_feats: np.ndarray, text_feats: np.ndarray, mapped: np.ndarray | None = None) -> np.ndarray:
        """Relevance in [0, 1] of image row i with text row i (a single text row is broadcast); ``mapped``: which
        aligned rows' texts came through the text map (:meth:`mapped_queries`), scored as :attr:`mapped_scorer`
        says."""
        image_feats = np.atleast_2d(image_feats)
        text_feats = _aligned(len(image_feats), text_feats)

        def predict(model: RelevanceModel, rows: Any) -> np.ndarray:
            return model.predict(image_feats[rows], text_feats[rows])

        return self._scored(predict, len(text_feats), mapped)

    def _scored(
        self, predict: Callable[[RelevanceModel, Any], np.ndarray], n: int, mapped: np.ndarray | None
    ) -> np.ndarray:
        """``predict(model, rows)`` of the scorer on all ``n`` rows, averaged with the mapped scorer's on the
        ``mapped`` rows, clipped to [0, 1]."""
        scores = np.asarray(predict(self.scorer, slice(None)), dtype=np.float64)
        mapped = np.zeros(n, dtype=bool) if mapped is None else np.broadcast_to(np.asarray(mapped, dtype=bool), (n,))
        if self.mapped_scorer is not None and mapped.any():
            scores[mapped] = (scores[mapped] + np.asarray(predict(self.mapped_scorer, mapped), dtype=np.float64)) / 2
        return np.clip(scores, 0.0, 1.0)

    @cached_property
    def rerank_layout(self) -> RerankLayout | None:
        """How :meth:`score_stored` reads an image; None for a scorer that reads raw features (the baselines)."""
        if not isinstance(self.scorer, MatchingHead):
            return None
        blocks, joint = self.joint.blocks, self.joint.matchers
        shared = {
            name: blocks[name] for name, matcher in self.scorer.matchers_.items()
            if name in joint and _same_matcher(matcher, joint[name])
        }
        own = {name: matcher.width for name, matcher in self.scorer.matchers_.items() if name not in shared}
        return RerankLayout(shared, own)

    def rerank_vectors(self, image_feats: np.ndarray) -> np.ndarray:
        """What an index keeps of an image for reranking besides its joint vector: the scorer's image vectors
        that the joint vectors do not hold (all the raw features, for a scorer that reads them)."""
        image_feats, layout = np.atleast_2d(image_feats), self.rerank_layout
        if layout is None:
            return np.asarray(image_feats, dtype=np.float32)
        blocks = [self.scorer.matchers_[name].embed_image(image_feats) for name in layout.own]
        return np.hstack(blocks).astype(np.float32) if blocks else np.zeros((len(image_feats), 0), np.float32)

    def score_stored(
        self, joint_rows: np.ndarray, rerank_rows: np.ndarray, text_feats: np.ndarray, mapped: np.ndarray | None = None
    ) -> np.ndarray:
        """:meth:`score` of images kept as their joint vectors and :meth:`rerank_vectors` (aligned rows)."""
        layout = self.rerank_layout
        if layout is None:
            return self.score(rerank_rows, text_feats, mapped)
        images = {name: joint_rows[:, start:stop] / scale for name, (start, stop, scale) in layout.from_joint.items()}
        start = 0
        for name, width in layout.own.items():
            images[name], start = rerank_rows[:, start : start + width], start + width
        text_feats = _aligned(len(joint_rows), text_feats)
        return self._scored(
            lambda model, rows: model.predict_embedded({n: v[rows] for n, v in images.items()}, text_feats[rows]),
            len(text_feats), mapped,
        )

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
        hashes: dict[str, str] = {}
        manifest = {
            "format": FORMAT,
            "selected": self.selected,
            "image_encoder": self.image_encoder,
            "image_encoder_id": self.image_encoder_id,
            "text_encoder": self.text_encoder,
            "text_encoder_id": self.text_encoder_id,
            "scorer": _save_exported(folder, "scorer", self.scorer.export(), hashes),
            "joint": _save_exported(folder, "joint", joint, hashes),
            "child": _save_exported(folder, "child", self.child.export(), hashes),
            "sha256": hashes,
        }
        if self.text_map is not None:
            manifest["text_map"] = _save_exported(folder, "text_map", self.text_map.export(), hashes)
        if self.mapped_scorer is not None:
            booster = Exported({"kind": "booster"}, {}, {"booster": self.mapped_scorer.booster_.model_to_string()})
            manifest["mapped_booster"] = _save_exported(folder, "scorer_mapped", booster, hashes)
        save_json(folder / MANIFEST, manifest)
        return folder

    @classmethod
    def load(cls, folder: str | os.PathLike) -> RelevanceBundle:
        """Read a bundle written by :meth:`save` (no pickle anywhere).

        Every file is checked before use: a missing, truncated, garbled or (by the sha256 that
        ``model.json`` records) changed file is an :class:`ArtifactError` naming that file."""
        folder = Path(folder)
        manifest = _manifest(folder)
        hashes = manifest.get("sha256", {})  # bundles saved before hashes were recorded have none
        parts = {name: _load_exported(folder, manifest[name], hashes) for name in _PARTS}
        joint = parts["joint"]
        scorer = _restored(folder, manifest["scorer"], lambda: restore_model(parts["scorer"]))
        return cls(
            scorer=scorer,
            joint=_restored(
                folder,
                manifest["joint"],
                lambda: JointSpace({n: restore_matcher(p) for n, p in unnest(joint).items()}, joint.params["weights"]),
            ),
            child=_restored(folder, manifest["child"], lambda: ChildDetector.restore(parts["child"])),
            image_encoder=manifest["image_encoder"],
            image_encoder_id=manifest["image_encoder_id"],
            text_encoder=manifest["text_encoder"],
            text_encoder_id=manifest["text_encoder_id"],
            selected=manifest["selected"],
            text_map=_text_map(folder, manifest, hashes),
            mapped_scorer=_mapped_scorer(folder, manifest, hashes, scorer),
        )


_NAMES = ("selected", "image_encoder", "image_encoder_id", "text_encoder", "text_encoder_id")
_PARTS = ("scorer", "joint", "child")


def _manifest(folder: Path) -> dict[str, Any]:
    """``model.json`` of ``folder``, checked for its format and every field :meth:`RelevanceBundle.load` reads."""
    path = folder / MANIFEST
    if not path.is_file():
        raise ArtifactError(f"{path}: not found; run `picsearch train --out {folder}` first")
    try:
        manifest = load_json(path)
    except ValueError as exc:
        raise ArtifactError(str(exc)) from None
    if not isinstance(manifest, dict) or manifest.get("format") != FORMAT:
        found = manifest.get("format") if isinstance(manifest, dict) else manifest
        raise ArtifactError(f"{path}: field format: expected {FORMAT}, found {found!r}")
    for name in _NAMES:
        if not isinstance(manifest.get(name), str):
            raise ArtifactError(f"{path}: field {name}: expected a string, found {manifest.get(name)!r}")
    for name in _PARTS:
        entry = manifest.get(name)
        if not isinstance(entry, dict) or not all(isinstance(entry.get(key), dict) for key in ("params", "texts")):
            raise ArtifactError(f"{path}: field {name}: expected an object with params and texts")
    return manifest
