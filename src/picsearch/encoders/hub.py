"""Model-hub encoders through ``transformers``: CLIP (image and text towers), ResNet-18, BERT.

Registry names take an optional source after a colon, a hub name or a local folder saved with
``save_pretrained``::

    clip                      openai/clip-vit-base-patch32 (image encoder and text encoder)
    clip:/models/my-clip      a local folder
    resnet18[:NAME_OR_PATH]   microsoft/resnet-18, pooled 512-d
    bert[:NAME_OR_PATH]       bert-base-uncased, attention-masked mean of the last hidden state

Without network (``HF_HUB_OFFLINE=1`` or no connection) a hub name must already be in the local
Hugging Face cache; otherwise construction fails at once with :class:`EncoderUnavailableError`
saying what to download or where to put it. Weights load lazily, on the first ``encode``.
Image preprocessing follows the model's ``preprocessor_config.json`` (Pillow + numpy).
"""

from __future__ import annotations

import hashlib
import json
import re
from dataclasses import dataclass
from functools import cached_property, lru_cache
from operator import attrgetter
from pathlib import Path
from typing import Any, Callable, Sequence

import numpy as np
import torch
from PIL import Image

from picsearch.encoders.base import EncoderUnavailableError, SerialTokenizer, encode_images
from picsearch.encoders.preprocess import resize_center_crop, to_chw

DEFAULT_SOURCES = {
    "clip": "openai/clip-vit-base-patch32",
    "resnet18": "microsoft/resnet-18",
    "bert": "bert-base-uncased",
}
TEXT_BATCH = 64


@dataclass(frozen=True)
class ImageRecipe:
    """Resize the shorter side to ``resize`` (bicubic etc.), centre-crop ``crop``, normalize.

    ``resize=None`` warps the whole image to ``crop`` x ``crop`` (processors with a fixed
    height/width size and no crop).
    """

    resize: int | None
    crop: int
    mean: tuple[float, float, float]
    std: tuple[float, float, float]
    resample: int = Image.BICUBIC

    def apply(self, image: Image.Image) -> np.ndarray:
        """RGB image -> normalized (3, crop, crop) float32."""
        if self.resize is None:
            image = image.resize((self.crop, self.crop), self.resample)
        else:
            image = resize_center_crop(image, self.resize, self.crop, self.resample)
        return to_chw(image, self.mean, self.std)

    @classmethod
    def from_config(cls, config: dict[str, Any], default: ImageRecipe) -> ImageRecipe:
        """Read a Hugging Face ``preprocessor_config.json`` (CLIP and ConvNext/ResNet styles)."""
        mean = tuple(config.get("image_mean", default.mean))
        std = tuple(config.get("image_std", default.std))
        resample = int(config.get("resample", default.resample))
        size = config.get("size")
        if size is None:
            return cls(default.resize, default.crop, mean, std, resample)
        if isinstance(size, int):
            size = {"shortest_edge": size}
        if "shortest_edge" not in size:
            return cls(None, int(size["height"]), mean, std, resample)
        shortest = int(size["shortest_edge"])
        if "crop_pct" in config:  # ConvNext rule: below 384, resize to shortest/crop_pct and crop shortest
            if shortest >= 384:
                return cls(None, shortest, mean, std, resample)
            return cls(int(shortest / config["crop_pct"]), shortest, mean, std, resample)
        crop = config.get("crop_size", shortest)
        crop = crop if isinstance(crop, int) else int(crop["height"])
        return cls(shortest, crop, mean, std, resample)


_CLIP_RECIPE = ImageRecipe(
    224, 224, (0.48145466, 0.4578275, 0.40821073), (0.26862954, 0.26130258, 0.27577711), Image.BICUBIC
)
_IMAGENET_RECIPE = ImageRecipe(256, 224, (0.485, 0.456, 0.406), (0.229, 0.224, 0.225), Image.BICUBIC)


def resolve_source(kind: str, source: str | None) -> str:
    """Default hub name for ``kind`` when ``source`` is empty; an existing folder as an absolute path."""
    if not source:
        return DEFAULT_SOURCES[kind]
    path = Path(source).expanduser()
    if path.is_dir():
        return str(path.resolve())
    if source.startswith(("/", ".", "~")):
        raise EncoderUnavailableError(f"{kind}: folder not found: {source}")
    return source


def _unavailable(kind: str, source: str, exc: Exception) -> EncoderUnavailableError:
    if Path(source).is_dir():
        reason = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        return EncoderUnavailableError(f"{kind}: cannot load the model folder {source}: {reason}")
    return EncoderUnavailableError(
        f"{kind}: {source!r} is not in the local Hugging Face cache and the hub cannot be reached "
        f"(offline); download it where there is network (`hf download {source}`) or save it with "
        f"save_pretrained to a folder and use `{kind}:/path/to/folder`"
    )


def _guarded(kind: str, source: str, load: Callable[[], Any]) -> Any:
    try:
        return load()
    except (OSError, ValueError) as exc:
        raise _unavailable(kind, source, exc) from exc


@lru_cache(maxsize=8)
def _config(kind: str, source: str) -> Any:
    from transformers import AutoConfig

    return _guarded(kind, source, lambda: AutoConfig.from_pretrained(source))


@lru_cache(maxsize=4)
def _model(kind: str, source: str) -> torch.nn.Module:
    """One loaded model per (kind, source), shared by the image and text encoders of CLIP."""
    import transformers

    model_class = {"clip": "CLIPModel", "resnet18": "ResNetModel", "bert": "BertModel"}[kind]
    model = _guarded(kind, source, lambda: getattr(transformers, model_class).from_pretrained(source))
    return model.float().eval()


@lru_cache(maxsize=4)
def _tokenizer(kind: str, source: str) -> Any:
    from transformers import AutoTokenizer

    return _guarded(kind, source, lambda: AutoTokenizer.from_pretrained(source))


def _recipe(kind: str, source: str, default: ImageRecipe) -> ImageRecipe:
    from transformers.utils import cached_file

    path = _guarded(
        kind, source, lambda: cached_file(source, "preprocessor_config.json", _raise_exceptions_for_missing_entries=False)
    )
    if path is None:
        return default
    return ImageRecipe.from_config(json.loads(Path(path).read_text(encoding="utf-8")), default)


def _encoder_id(kind: str, role: str, source: str) -> str:
    digest = hashlib.blake2b(source.encode("utf-8"), digest_size=4).hexdigest()
    slug = re.sub(r"[^A-Za-z0-9._-]+", "_", source.rstrip("/").rsplit("/", 1)[-1])
    return f"{kind}-{role}-{slug}-{digest}-v1"


class _HubEncoder:
    """Shared part: source resolution, config (loaded at once, so a missing model fails early), lazy model."""

    kind: str
    role: str
    dim_path: str  # where the config keeps the output width

    def __init__(self, source: str | None = None) -> None:
        self.source = resolve_source(self.kind, source)
        self.config = _config(self.kind, self.source)
        self.id = _encoder_id(self.kind, self.role, self.source)
        width = attrgetter(self.dim_path)(self.config)
        self.dim = int(width[-1] if isinstance(width, (list, tuple)) else width)

    @property
    def model(self) -> torch.nn.Module:
        return _model(self.kind, self.source)


class _HubImageEncoder(_HubEncoder):
    role = "image"
    default_recipe: ImageRecipe

    def __init__(self, source: str | None = None) -> None:
        super().__init__(source)
        self.recipe = _recipe(self.kind, self.source, self.default_recipe)
        self.fields = {"pooled": (0, self.dim)}

    def preprocess(self, image: Image.Image) -> np.ndarray:
        return self.recipe.apply(image)

    @torch.inference_mode()
    def encode_arrays(self, batch: np.ndarray) -> np.ndarray:
        return self._forward(torch.from_numpy(np.ascontiguousarray(batch, dtype=np.float32))).numpy()

    def encode(self, images: Sequence[Image.Image]) -> np.ndarray:
        return encode_images(self, images)

    def _forward(self, pixels: torch.Tensor) -> torch.Tensor:
        raise NotImplementedError


class _HubTextEncoder(_HubEncoder):
    role = "text"
    max_length_path: str  # where the config keeps the longest input, in tokens

    @property
    def max_length(self) -> int:
        return int(attrgetter(self.max_length_path)(self.config))

    @cached_property
    def tokenizer(self) -> Any:
        return SerialTokenizer(_tokenizer(self.kind, self.source))

    @torch.inference_mode()
    def encode(self, texts: Sequence[str]) -> np.ndarray:
        out = [np.zeros((0, self.dim), dtype=np.float32)]
        for start in range(0, len(texts), TEXT_BATCH):
            tokens = self.tokenizer(
                list(texts[start : start + TEXT_BATCH]),
                padding=True,
                truncation=True,
                max_length=self.max_length,
                return_tensors="pt",
            )
            out.append(self._forward(tokens["input_ids"], tokens["attention_mask"]).numpy())
        return np.concatenate(out).astype(np.float32, copy=False)

    def _forward(self, input_ids: torch.Tensor, attention_mask: torch.Tensor) -> torch.Tensor:
        raise NotImplementedError


def _normalized(vectors: torch.Tensor) -> torch.Tensor:
    return torch.nn.functional.normalize(vectors.float(), dim=-1)


class CLIPImageEncoder(_HubImageEncoder):
    """CLIP image tower: projected, L2-normalized embedding (512-d for ViT-B/32)."""

    kind = "clip"
    default_recipe = _CLIP_RECIPE

    dim_path = "projection_dim"

    def _forward(self, pixels: torch.Tensor) -> torch.Tensor:
        pooled = self.model.vision_model(pixel_values=pixels).pooler_output
        return _normalized(self.model.visual_projection(pooled))


class CLIPTextEncoder(_HubTextEncoder):
    """CLIP text tower: projected, L2-normalized embedding in the same space as the image tower."""

    kind = "clip"

    dim_path = "projection_dim"
    max_length_path = "text_config.max_position_embeddings"

    def _forward(self, input_ids: torch.Tensor, attention_mask: torch.Tensor) -> torch.Tensor:
        pooled = self.model.text_model(input_ids=input_ids, attention_mask=attention_mask).pooler_output
        return _normalized(self.model.text_projection(pooled))


class ResNetImageEncoder(_HubImageEncoder):
    """ResNet (``microsoft/resnet-18``): globally average-pooled last stage, 512-d, not normalized."""

    kind = "resnet18"
    default_recipe = _IMAGENET_RECIPE

    dim_path = "hidden_sizes"  # the last stage's width

    def _forward(self, pixels: torch.Tensor) -> torch.Tensor:
        return self.model(pixel_values=pixels).pooler_output.flatten(1).float()


class BertTextEncoder(_HubTextEncoder):
    """BERT: mean of the last hidden state over real (unpadded) tokens, 768-d, not normalized."""

    kind = "bert"

    dim_path = "hidden_size"
    max_length_path = "max_position_embeddings"

    def _forward(self, input_ids: torch.Tensor, attention_mask: torch.Tensor) -> torch.Tensor:
        hidden = self.model(input_ids=input_ids, attention_mask=attention_mask).last_hidden_state
        mask = attention_mask.unsqueeze(-1).to(hidden.dtype)
        return ((hidden * mask).sum(dim=1) / mask.sum(dim=1).clamp(min=1.0)).float()
