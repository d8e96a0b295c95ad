"""Image and text encoders behind one small interface, chosen by name."""

from __future__ import annotations

from typing import Callable

from picsearch.encoders.base import EncoderUnavailableError, ImageEncoder, TextEncoder

DEFAULT_IMAGE_ENCODER = "effnet-lite0"
DEFAULT_TEXT_ENCODER = "minilm"


def _effnet(variant: str) -> Callable[[], ImageEncoder]:
    def build() -> ImageEncoder:
        from picsearch.encoders.effnet import EfficientNetLiteEncoder

        return EfficientNetLiteEncoder(variant)

    return build


def _minilm() -> TextEncoder:
    from picsearch.encoders.minilm import MiniLMTextEncoder

    return MiniLMTextEncoder()


IMAGE_ENCODERS: dict[str, Callable[[], ImageEncoder]] = {
    "effnet-lite0": _effnet("lite0"),
    "effnet-lite2": _effnet("lite2"),
}
TEXT_ENCODERS: dict[str, Callable[[], TextEncoder]] = {
    "minilm": _minilm,
}


def get_image_encoder(name: str = DEFAULT_IMAGE_ENCODER) -> ImageEncoder:
    """Build the image encoder registered as ``name``."""
    if name not in IMAGE_ENCODERS:
        raise KeyError(f"unknown image encoder {name!r}; known: {', '.join(sorted(IMAGE_ENCODERS))}")
    return IMAGE_ENCODERS[name]()


def get_text_encoder(name: str = DEFAULT_TEXT_ENCODER) -> TextEncoder:
    """Build the text encoder registered as ``name``."""
    if name not in TEXT_ENCODERS:
        raise KeyError(f"unknown text encoder {name!r}; known: {', '.join(sorted(TEXT_ENCODERS))}")
    return TEXT_ENCODERS[name]()


__all__ = [
    "DEFAULT_IMAGE_ENCODER",
    "DEFAULT_TEXT_ENCODER",
    "EncoderUnavailableError",
    "ImageEncoder",
    "TextEncoder",
    "get_image_encoder",
    "get_text_encoder",
]
