"""Matching models: image and text vectors mapped into one space, fitted on positive pairs only.

Every matcher has ``fit(image_feats, text_feats)`` on aligned positive pairs (row i of both is one
image with a caption that describes it), ``embed_image`` / ``embed_text`` (L2-normalized rows of the
matcher's joint space, so a dot product is a cosine). ``export`` / ``restore`` keep them in
safe formats. :class:`JointSpace` combines several matchers into the one space retrieval uses.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Protocol, Sequence

import numpy as np
import torch
import torch.nn.functional as F

from picsearch.models.base import Exported, Standardizer, l2_normalize, ridge_solve

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


class Matcher(Protocol):
    """Maps images and texts into one space; fitted on positive pairs."""

    kind: str

    def fit(self, image_feats: np.ndarray, text_feats: np.ndarray) -> Matcher: ...
    def embed_image(self, image_feats: np.ndarray) -> np.ndarray: ...
    def embed_text(self, text_feats: np.ndarray) -> np.ndarray: ...
    def export(self) -> Exported: ...


class _RawTextMixin:
    """Matchers whose joint space is the text encoder's own space."""

    def embed_text(self, text_feats: np.ndarray) -> np.ndarray:
        return l2_normalize(text_feats)


class RidgeMatcher(_RawTextMixin):
    """Ridge regression from standardized image features to the caption vectors."""

    kind = "ridge"

    def __init__(self, layout: ImageLayout, alpha: float = 10000.0) -> None:
        self.layout, self.alpha = layout, alpha

    def fit(self, image_feats: np.ndarray, text_feats: np.ndarray) -> RidgeMatcher:
        x = self.layout.inputs(image_feats)
        self.scaler = Standardizer().fit(x)
        self.text_mean = text_feats.mean(axis=0).astype(np.float32)
        self.weights = ridge_solve(self.scaler.transform(x), text_feats - self.text_mean, self.alpha)
        return self

    def embed_image(self, image_feats: np.ndarray) -> np.ndarray:
        x = self.scaler.transform(self.layout.inputs(image_feats))
        return l2_normalize(x @ self.weights + self.text_mean)

    def export(self) -> Exported:
        arrays = {"weights": self.weights, "text_mean": self.text_mean, **self.scaler.export("x_")}
        return Exported({"kind": self.kind, "alpha": self.alpha, "layout": self.layout.to_json()}, arrays)

    @classmethod
    def restore(cls, exported: Exported) -> RidgeMatcher:
        matcher = cls(ImageLayout.from_json(exported.params["layout"]), exported.params["alpha"])
        matcher.weights, matcher.text_mean = exported.arrays["weights"], exported.arrays["text_mean"]
        matcher.scaler = Standardizer.restore(exported.arrays, "x_")
        return matcher


class TwoTowerMatcher:
    """Two linear projections into a shared space, trained with a symmetric InfoNCE loss (PyTorch)."""

    kind = "two_tower"

    def __init__(
        self,
        layout: ImageLayout,
        dim: int = 256,
        epochs: int = 20,
        temperature: float = 0.05,
        lr: float = 1e-3,
        weight_decay: float = 1e-2,
        dropout: float = 0.2,
        batch_size: int = 256,
        seed: int = 0,
    ) -> None:
        self.layout = layout
        self.hparams = dict(
            dim=dim, epochs=epochs, temperature=temperature, lr=lr, weight_decay=weight_decay,
            dropout=dropout, batch_size=batch_size, seed=seed,
        )

    def fit(self, image_feats: np.ndarray, text_feats: np.ndarray) -> TwoTowerMatcher:
        hp = self.hparams
        x = self.layout.inputs(image_feats)
        self.scaler = Standardizer().fit(x)
        images = torch.from_numpy(self.scaler.transform(x))
        texts = torch.from_numpy(np.asarray(text_feats, dtype=np.float32))
        generator = torch.Generator().manual_seed(hp["seed"])
        torch.manual_seed(hp["seed"])
        image_proj = torch.nn.Linear(images.shape[1], hp["dim"])
        text_proj = torch.nn.Linear(texts.shape[1], hp["dim"])
        dropout = torch.nn.Dropout(hp["dropout"])
        params = [*image_proj.parameters(), *text_proj.parameters()]
        optimizer = torch.optim.AdamW(params, lr=hp["lr"], weight_decay=hp["weight_decay"])
        for _ in range(hp["epochs"]):
            order = torch.randperm(len(images), generator=generator)
            for start in range(0, len(images), hp["batch_size"]):
                batch = order[start : start + hp["batch_size"]]
                a = F.normalize(image_proj(dropout(images[batch])), dim=1)
                b = F.normalize(text_proj(texts[batch]), dim=1)
                logits = a @ b.T / hp["temperature"]
                labels = torch.arange(len(batch))
                loss = (F.cross_entropy(logits, labels) + F.cross_entropy(logits.T, labels)) / 2
                optimizer.zero_grad()
                loss.backward()
                optimizer.step()
        # Linear towers: inference is two matrix products in numpy.
        self.image_w = image_proj.weight.detach().numpy().T.copy()
        self.image_b = image_proj.bias.detach().numpy().copy()
        self.text_w = text_proj.weight.detach().numpy().T.copy()
        self.text_b = text_proj.bias.detach().numpy().copy()
        return self

    def embed_image(self, image_feats: np.ndarray) -> np.ndarray:
        return l2_normalize(self.scaler.transform(self.layout.inputs(image_feats)) @ self.image_w + self.image_b)

    def embed_text(self, text_feats: np.ndarray) -> np.ndarray:
        return l2_normalize(np.asarray(text_feats, dtype=np.float32) @ self.text_w + self.text_b)

    def export(self) -> Exported:
        arrays = {
            "image_w": self.image_w, "image_b": self.image_b, "text_w": self.text_w, "text_b": self.text_b,
            **self.scaler.export("x_"),
        }
        return Exported({"kind": self.kind, "layout": self.layout.to_json(), **self.hparams}, arrays)

    @classmethod
    def restore(cls, exported: Exported) -> TwoTowerMatcher:
        params = dict(exported.params)
        layout = ImageLayout.from_json(params.pop("layout"))
        params.pop("kind")
        matcher = cls(layout, **params)
        for name in ("image_w", "image_b", "text_w", "text_b"):
            setattr(matcher, name, exported.arrays[name])
        matcher.scaler = Standardizer.restore(exported.arrays, "x_")
        return matcher


def soft_nearest_mean(sims: np.ndarray, values: np.ndarray, k: int, temperature: float) -> np.ndarray:
    """Per row of ``sims``: the softmax(sim / temperature)-weighted mean of the ``values`` of its k most similar
    columns, L2-normalized."""
    k = min(k, sims.shape[1])
    nearest = np.argpartition(-sims, k - 1, axis=1)[:, :k]
    top = np.take_along_axis(sims, nearest, axis=1)
    weights = np.exp((top - top.max(axis=1, keepdims=True)) / temperature)
    weights /= weights.sum(axis=1, keepdims=True)
    return l2_normalize(np.einsum("nk,nkd->nd", weights, values[nearest]))


class CaptionTransferMatcher(_RawTextMixin):
    """An image is the softmax-weighted mean of the captions of its k nearest training images."""

    kind = "caption_transfer"

    def __init__(self, layout: ImageLayout, k: int = 50, temperature: float = 0.05) -> None:
        self.layout, self.k, self.temperature = layout, k, temperature

    def fit(self, image_feats: np.ndarray, text_feats: np.ndarray) -> CaptionTransferMatcher:
        pooled = self.layout.pooled_of(image_feats)
        unique, inverse = np.unique(pooled, axis=0, return_inverse=True)
        captions = np.zeros((len(unique), text_feats.shape[1]), dtype=np.float64)
        np.add.at(captions, inverse.ravel(), l2_normalize(text_feats))
        self.center = unique.mean(axis=0).astype(np.float32)
        self.gallery = l2_normalize(unique - self.center)
        self.captions = l2_normalize(captions)
        return self

    def embed_image(self, image_feats: np.ndarray) -> np.ndarray:
        sims = l2_normalize(self.layout.pooled_of(image_feats) - self.center) @ self.gallery.T
        return soft_nearest_mean(sims, self.captions, self.k, self.temperature)

    def export(self) -> Exported:
        params = {"kind": self.kind, "layout": self.layout.to_json(), "k": self.k, "temperature": self.temperature}
        return Exported(params, {"center": self.center, "gallery": self.gallery, "captions": self.captions})

    @classmethod
    def restore(cls, exported: Exported) -> CaptionTransferMatcher:
        p = exported.params
        matcher = cls(ImageLayout.from_json(p["layout"]), p["k"], p["temperature"])
        matcher.center, matcher.gallery, matcher.captions = (
            exported.arrays["center"], exported.arrays["gallery"], exported.arrays["captions"]
        )
        return matcher


class ImageTransferMatcher:
    """The mirror of :class:`CaptionTransferMatcher`: a text is the softmax-weighted mean of the images described
    by its k nearest training captions, compared with images in the (centred) pooled feature space."""

    kind = "image_transfer"

    def __init__(self, layout: ImageLayout, k: int = 50, temperature: float = 0.05) -> None:
        self.layout, self.k, self.temperature = layout, k, temperature

    def fit(self, image_feats: np.ndarray, text_feats: np.ndarray) -> ImageTransferMatcher:
        pooled = self.layout.pooled_of(image_feats)
        self.center = np.unique(pooled, axis=0).mean(axis=0).astype(np.float32)
        texts, inverse = np.unique(text_feats, axis=0, return_inverse=True)
        images = np.zeros((len(texts), pooled.shape[1]), dtype=np.float64)
        np.add.at(images, inverse.ravel(), self.embed_image(image_feats))
        self.captions, self.images = l2_normalize(texts), l2_normalize(images)
        return self

    def embed_image(self, image_feats: np.ndarray) -> np.ndarray:
        return l2_normalize(self.layout.pooled_of(image_feats) - self.center)

    def embed_text(self, text_feats: np.ndarray) -> np.ndarray:
        return soft_nearest_mean(l2_normalize(text_feats) @ self.captions.T, self.images, self.k, self.temperature)

    def export(self) -> Exported:
        params = {"kind": self.kind, "layout": self.layout.to_json(), "k": self.k, "temperature": self.temperature}
        return Exported(params, {"center": self.center, "captions": self.captions, "images": self.images})

    @classmethod
    def restore(cls, exported: Exported) -> ImageTransferMatcher:
        p, arrays = exported.params, exported.arrays
        matcher = cls(ImageLayout.from_json(p["layout"]), p["k"], p["temperature"])
        matcher.center, matcher.captions, matcher.images = arrays["center"], arrays["captions"], arrays["images"]
        return matcher


class ClassBridgeMatcher(_RawTextMixin):
    """Zero-shot: an image is its ImageNet class distribution times the class names' text vectors."""

    kind = "class_bridge"

    def __init__(self, layout: ImageLayout, class_texts: np.ndarray, power: float = 1.0) -> None:
        self.layout, self.class_texts, self.power = layout, np.asarray(class_texts, np.float32), power

    def fit(self, image_feats: np.ndarray, text_feats: np.ndarray) -> ClassBridgeMatcher:
        return self

    def embed_image(self, image_feats: np.ndarray) -> np.ndarray:
        probs = np.clip(self.layout.probs_of(image_feats), 0.0, None) ** self.power
        return l2_normalize(probs @ self.class_texts)

    def export(self) -> Exported:
        params = {"kind": self.kind, "layout": self.layout.to_json(), "power": self.power}
        return Exported(params, {"class_texts": self.class_texts})

    @classmethod
    def restore(cls, exported: Exported) -> ClassBridgeMatcher:
        p = exported.params
        return cls(ImageLayout.from_json(p["layout"]), exported.arrays["class_texts"], p["power"])


class SharedSpaceMatcher(_RawTextMixin):
    """Encoders that already share one space (the two towers of one CLIP): plain cosine, nothing fitted."""

    kind = "shared_space"

    def __init__(self, layout: ImageLayout) -> None:
        self.layout = layout

    def fit(self, image_feats: np.ndarray, text_feats: np.ndarray) -> SharedSpaceMatcher:
        return self

    def embed_image(self, image_feats: np.ndarray) -> np.ndarray:
        return l2_normalize(self.layout.pooled_of(image_feats))

    def export(self) -> Exported:
        return Exported({"kind": self.kind, "layout": self.layout.to_json()})

    @classmethod
    def restore(cls, exported: Exported) -> SharedSpaceMatcher:
        return cls(ImageLayout.from_json(exported.params["layout"]))


MATCHER_KINDS = {
    cls.kind: cls
    for cls in (
        RidgeMatcher, TwoTowerMatcher, CaptionTransferMatcher, ImageTransferMatcher, ClassBridgeMatcher,
        SharedSpaceMatcher,
    )
}


def restore_matcher(exported: Exported) -> Matcher:
    """Rebuild a matcher from :meth:`export` output."""
    return MATCHER_KINDS[exported.params["kind"]].restore(exported)


class JointSpace:
    """Several fitted matchers as one space: blocks scaled by sqrt(weight), so cosine = weighted mean of theirs."""

    def __init__(self, matchers: dict[str, Matcher], weights: dict[str, float]) -> None:
        if not weights or any(name not in matchers for name in weights):
            raise ValueError(f"weights {weights} must name some of the matchers {sorted(matchers)}")
        total = sum(weights.values())
        self.matchers = {name: matchers[name] for name in weights}
        self.scales = {name: float(np.sqrt(w / total)) for name, w in weights.items()}

    def embed_image(self, image_feats: np.ndarray) -> np.ndarray:
        return self._stack([m.embed_image(image_feats) for m in self.matchers.values()])

    def embed_text(self, text_feats: np.ndarray) -> np.ndarray:
        return self._stack([m.embed_text(text_feats) for m in self.matchers.values()])

    def _stack(self, blocks: list[np.ndarray]) -> np.ndarray:
        scaled = [block * scale for block, scale in zip(blocks, self.scales.values())]
        return l2_normalize(np.hstack(scaled))

    @property
    def weights(self) -> dict[str, float]:
        return {name: scale**2 for name, scale in self.scales.items()}
