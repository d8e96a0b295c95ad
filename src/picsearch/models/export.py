"""The safe on-disk form of a fitted estimator (JSON params, safetensors arrays, LightGBM texts) and its nesting."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any


@dataclass
class Exported:
    """A fitted estimator in safe formats: JSON ``params``, float ``arrays`` (safetensors), ``texts`` (LightGBM)."""

    params: dict[str, Any]
    arrays: dict[str, Any] = field(default_factory=dict)
    texts: dict[str, str] = field(default_factory=dict)


def nest(parts: dict[str, Exported], params: dict[str, Any]) -> Exported:
    """One :class:`Exported` holding several named parts (arrays and texts prefixed ``name/``)."""
    nested = Exported({**params, "parts": {name: part.params for name, part in parts.items()}})
    for name, part in parts.items():
        nested.arrays.update({f"{name}/{key}": value for key, value in part.arrays.items()})
        nested.texts.update({f"{name}/{key}": value for key, value in part.texts.items()})
    return nested


def unnest(exported: Exported) -> dict[str, Exported]:
    """The named parts of a :func:`nest` result."""

    def strip(items: dict[str, Any], name: str) -> dict[str, Any]:
        return {key.split("/", 1)[1]: value for key, value in items.items() if key.startswith(f"{name}/")}

    return {
        name: Exported(params, strip(exported.arrays, name), strip(exported.texts, name))
        for name, params in exported.params["parts"].items()
    }
