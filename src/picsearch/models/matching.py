"""Matching models: image and text vectors mapped into one space, fitted on positive pairs only.

Every matcher has ``fit(image_feats, text_feats)`` on aligned positive pairs (row i of both is one
image with a caption that describes it), ``embed_image`` / ``embed_text`` (L2-normalized rows of the
matcher's joint space, so a dot product is a cosine). Hyperparameters are ``__init__`` arguments
(scikit-learn's ``get_params``), fitted attributes end in ``_``; ``export`` / ``restore`` keep them in
safe formats. :class:`JointSpace` combines several matchers into the one space retrieval uses.
"""

from __future__ import annotations

import hashlib
import threading
from concurrent.futures import Future
from typing import Callable, Protocol

import numpy as np
import torch
import torch.nn.functional as F
from sklearn.base import BaseEstimator

from picsearch.models.export import Exported
from picsearch.models.layout import ImageLayout, params_from_json, params_to_json
from picsearch.models.linear import fit_ridge, fit_scaler, restore_scaler, scale, scaler_arrays
from picsearch.models.nn import SeededDropout, adamw, seeded_linear
from picsearch.models.vectors import l2_normalize, unique_rows


class Matcher(Protocol):
    """Maps images and texts into one space; fitted on positive pairs."""

    kind: str

    @property
    def width(self) -> int: ...
    def fit(self, image_feats: np.ndarray, text_feats: np.ndarray) -> Matcher: ...
    def embed_image(self, image_feats: np.ndarray) -> np.ndarray: ...
    def embed_text(self, text_feats: np.ndarray) -> np.ndarray: ...
    def export(self) -> Exported: ...


MatcherFactory = Callable[[], Matcher]


def fit_matchers(factories: dict[str, MatcherFactory], image_feats: np.ndarray, text_feats: np.ndarray
                 ) -> dict[str, Matcher]:
    """A fresh matcher of every factory, fitted on the same positive pairs."""
    return {name: make().fit(image_feats, text_feats) for name, make in factories.items()}


def embed_images(matchers: dict[str, Matcher], image_feats: np.ndarray) -> dict[str, np.ndarray]:
    """Each matcher's image vectors of ``image_feats``, by the matcher's name."""
    return {name: matcher.embed_image(image_feats) for name, matcher in matchers.items()}


class MatcherMemo:
    """:func:`fit_matchers` once per distinct input: the matchers of several models trained on the same positives.

    `train` refits its selected model on each training-data option; the options differ in the targets and rows
    the head learns from, not in the positives the matchers fit, so those fits repeat exactly. Keyed by the
    factories object and the inputs' bytes; the matchers come back shared, and nothing mutates a fitted
    matcher. Thread-safe: a fit in progress on another thread is waited for, not repeated. It holds every
    set it fitted (about 40 MB each for the default encoders) for as long as it lives."""

    def __init__(self) -> None:
        self._fits: dict[str, Future[dict[str, Matcher]]] = {}
        self._lock = threading.Lock()

    def fit(self, factories: dict[str, MatcherFactory], image_feats: np.ndarray, text_feats: np.ndarray
            ) -> dict[str, Matcher]:
        key = _inputs_digest(id(factories), image_feats, text_feats)
        with self._lock:
            future, owner = self._fits.get(key), False
            if future is None:
                future, owner = Future(), True
                self._fits[key] = future
        if owner:
            try:
                future.set_result(fit_matchers(factories, image_feats, text_feats))
            except BaseException as exc:
                with self._lock:
                    del self._fits[key]
                future.set_exception(exc)
                raise
        return future.result()


def _inputs_digest(owner: int, *arrays: np.ndarray) -> str:
    digest = hashlib.blake2b(str(owner).encode(), digest_size=16)
    for array in arrays:
        array = np.ascontiguousarray(array)
        digest.update(f"{array.dtype}{array.shape}".encode())
        digest.update(array.data)
    return digest.hexdigest()


class _MatcherBase(BaseEstimator):
    """Export of the hyperparameters (``get_params``) plus the fitted arrays named in ``_fitted``."""

    kind = ""
    _fitted: tuple[str, ...] = ()

    def export(self) -> Exported:
        params = {"kind": self.kind, **params_to_json(self.get_params())}
        return Exported(params, {name.rstrip("_"): getattr(self, name) for name in self._fitted})

    @classmethod
    def restore(cls, exported: Exported):
        matcher = cls(**params_from_json(exported.params))
        for name in cls._fitted:
            setattr(matcher, name, exported.arrays[name.rstrip("_")])
        return matcher


class _RawTextMixin:
    """Matchers whose joint space is the text encoder's own space."""

    def embed_text(self, text_feats: np.ndarray) -> np.ndarray:
        return l2_normalize(text_feats)


class RidgeMatcher(_RawTextMixin, _MatcherBase):
    """Ridge regression (scikit-learn) from standardized image features to the caption vectors."""

    kind = "ridge"

    def __init__(self, layout: ImageLayout, alpha: float = 10000.0) -> None:
        self.layout, self.alpha = layout, alpha

    @property
    def width(self) -> int:
        """Width of the matcher's space."""
        return self.coef_.shape[1]

    def fit(self, image_feats: np.ndarray, text_feats: np.ndarray) -> RidgeMatcher:
        x = self.layout.inputs(image_feats)
        self.scaler_ = fit_scaler(x)
        ridge = fit_ridge(scale(self.scaler_, x), text_feats, self.alpha)
        self.coef_, self.intercept_ = ridge.coef_.T.astype(np.float32), ridge.intercept_.astype(np.float32)
        return self

    def embed_image(self, image_feats: np.ndarray) -> np.ndarray:
        x = scale(self.scaler_, self.layout.inputs(image_feats))
        return l2_normalize(x @ self.coef_ + self.intercept_)

    def export(self) -> Exported:
        # On-disk names of format 3: the intercept is the caption mean (the inputs are centred).
        arrays = {"weights": self.coef_, "text_mean": self.intercept_, **scaler_arrays(self.scaler_, "x_")}
        return Exported({"kind": self.kind, **params_to_json(self.get_params())}, arrays)

    @classmethod
    def restore(cls, exported: Exported) -> RidgeMatcher:
        matcher = cls(**params_from_json(exported.params))
        matcher.coef_, matcher.intercept_ = exported.arrays["weights"], exported.arrays["text_mean"]
        matcher.scaler_ = restore_scaler(exported.arrays, "x_")
        return matcher


class TwoTowerMatcher(_MatcherBase):
    """Two linear projections into a shared space, trained with a symmetric InfoNCE loss (PyTorch)."""

    kind = "two_tower"
    _fitted = ("image_w_", "image_b_", "text_w_", "text_b_")

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
        self.layout, self.dim, self.epochs, self.temperature = layout, dim, epochs, temperature
        self.lr, self.weight_decay, self.dropout, self.batch_size, self.seed = lr, weight_decay, dropout, batch_size, seed

    @property
    def width(self) -> int:
        """Width of the matcher's space."""
        return self.image_w_.shape[1]

    def fit(self, image_feats: np.ndarray, text_feats: np.ndarray) -> TwoTowerMatcher:
        x = self.layout.inputs(image_feats)
        self.scaler_ = fit_scaler(x)
        images = torch.from_numpy(scale(self.scaler_, x))
        texts = torch.from_numpy(np.asarray(text_feats, dtype=np.float32))
        generator = torch.Generator().manual_seed(self.seed)
        image_proj = seeded_linear(images.shape[1], self.dim, generator)
        text_proj = seeded_linear(texts.shape[1], self.dim, generator)
        dropout = SeededDropout(self.dropout, self.seed)
        params = [*image_proj.parameters(), *text_proj.parameters()]
        optimizer = adamw(params, lr=self.lr, weight_decay=self.weight_decay)
        for _ in range(self.epochs):
            order = torch.randperm(len(images), generator=generator)
            for start in range(0, len(images), self.batch_size):
                batch = order[start : start + self.batch_size]
                a = F.normalize(image_proj(dropout(images[batch])), dim=1)
                b = F.normalize(text_proj(texts[batch]), dim=1)
                logits = a @ b.T / self.temperature
                labels = torch.arange(len(batch))
                loss = (F.cross_entropy(logits, labels) + F.cross_entropy(logits.T, labels)) / 2
                optimizer.zero_grad()
                loss.backward()
                optimizer.step()
        # Linear towers: inference is two matrix products in numpy.
        self.image_w_ = image_proj.weight.detach().numpy().T.copy()
        self.image_b_ = image_proj.bias.detach().numpy().copy()
        self.text_w_ = text_proj.weight.detach().numpy().T.copy()
        self.text_b_ = text_proj.bias.detach().numpy().copy()
        return self

    def embed_image(self, image_feats: np.ndarray) -> np.ndarray:
        return l2_normalize(scale(self.scaler_, self.layout.inputs(image_feats)) @ self.image_w_ + self.image_b_)

    def embed_text(self, text_feats: np.ndarray) -> np.ndarray:
        return l2_normalize(np.asarray(text_feats, dtype=np.float32) @ self.text_w_ + self.text_b_)

    def export(self) -> Exported:
        exported = super().export()
        exported.arrays.update(scaler_arrays(self.scaler_, "x_"))
        return exported

    @classmethod
    def restore(cls, exported: Exported) -> TwoTowerMatcher:
        matcher = super().restore(exported)
        matcher.scaler_ = restore_scaler(exported.arrays, "x_")
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


class CaptionTransferMatcher(_RawTextMixin, _MatcherBase):
    """An image is the softmax-weighted mean of the captions of its k nearest training images."""

    kind = "caption_transfer"
    _fitted = ("center_", "gallery_", "captions_")

    def __init__(self, layout: ImageLayout, k: int = 50, temperature: float = 0.05) -> None:
        self.layout, self.k, self.temperature = layout, k, temperature

    @property
    def width(self) -> int:
        """Width of the matcher's space."""
        return self.captions_.shape[1]

    def fit(self, image_feats: np.ndarray, text_feats: np.ndarray) -> CaptionTransferMatcher:
        pooled = self.layout.pooled_of(image_feats)
        unique, inverse = unique_rows(pooled)
        captions = np.zeros((len(unique), text_feats.shape[1]), dtype=np.float64)
        np.add.at(captions, inverse, l2_normalize(text_feats))
        self.center_ = unique.mean(axis=0).astype(np.float32)
        self.gallery_ = l2_normalize(unique - self.center_)
        self.captions_ = l2_normalize(captions)
        return self

    def embed_image(self, image_feats: np.ndarray) -> np.ndarray:
        sims = l2_normalize(self.layout.pooled_of(image_feats) - self.center_) @ self.gallery_.T
        return soft_nearest_mean(sims, self.captions_, self.k, self.temperature)


class ImageTransferMatcher(_MatcherBase):
    """The mirror of :class:`CaptionTransferMatcher`: a text is the softmax-weighted mean of the images described
    by its k nearest training captions, compared with images in the (centred) pooled feature space."""

    kind = "image_transfer"
    _fitted = ("center_", "captions_", "images_")

    def __init__(self, layout: ImageLayout, k: int = 50, temperature: float = 0.05) -> None:
        self.layout, self.k, self.temperature = layout, k, temperature

    @property
    def width(self) -> int:
        """Width of the matcher's space."""
        return self.center_.shape[0]

    def fit(self, image_feats: np.ndarray, text_feats: np.ndarray) -> ImageTransferMatcher:
        pooled = self.layout.pooled_of(image_feats)
        self.center_ = unique_rows(pooled)[0].mean(axis=0).astype(np.float32)
        texts, inverse = unique_rows(text_feats)
        images = np.zeros((len(texts), pooled.shape[1]), dtype=np.float64)
        np.add.at(images, inverse, self.embed_image(image_feats))
        self.captions_, self.images_ = l2_normalize(texts), l2_normalize(images)
        return self

    def embed_image(self, image_feats: np.ndarray) -> np.ndarray:
        return l2_normalize(self.layout.pooled_of(image_feats) - self.center_)

    def embed_text(self, text_feats: np.ndarray) -> np.ndarray:
        return soft_nearest_mean(l2_normalize(text_feats) @ self.captions_.T, self.images_, self.k, self.temperature)


class ClassBridgeMatcher(_RawTextMixin, _MatcherBase):
    """Zero-shot: an image is its ImageNet class distribution times the class names' text vectors."""

    kind = "class_bridge"

    def __init__(self, layout: ImageLayout, class_texts: np.ndarray, power: float = 1.0) -> None:
        self.layout, self.class_texts, self.power = layout, np.asarray(class_texts, np.float32), power

    @property
    def width(self) -> int:
        """Width of the matcher's space."""
        return self.class_texts.shape[1]

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
        return cls(class_texts=exported.arrays["class_texts"], **params_from_json(exported.params))


class SharedSpaceMatcher(_RawTextMixin, _MatcherBase):
    """Encoders that already share one space (the two towers of one CLIP): plain cosine, nothing fitted."""

    kind = "shared_space"

    def __init__(self, layout: ImageLayout) -> None:
        self.layout = layout

    @property
    def width(self) -> int:
        """Width of the matcher's space."""
        return self.layout.pooled[1] - self.layout.pooled[0]

    def fit(self, image_feats: np.ndarray, text_feats: np.ndarray) -> SharedSpaceMatcher:
        return self

    def embed_image(self, image_feats: np.ndarray) -> np.ndarray:
        return l2_normalize(self.layout.pooled_of(image_feats))


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

    @property
    def blocks(self) -> dict[str, tuple[int, int, float]]:
        """Where each matcher's image vectors sit in a joint vector: columns ``[start, stop)`` holding them times
        ``scale`` (every block is a unit vector, so the stacked vector already has norm 1)."""
        out, start = {}, 0
        for name, matcher in self.matchers.items():
            out[name] = (start, start + matcher.width, self.scales[name])
            start += matcher.width
        return out
