"""The web interface: a FastAPI app over a `picsearch.search.Searcher`.

``create_app`` is imported on first use, so the CLI can read this package's limits without loading FastAPI."""

from __future__ import annotations

from typing import Any

__all__ = ["create_app"]


def __getattr__(name: str) -> Any:
    if name == "create_app":
        from picsearch.interfaces.web.app import create_app

        return create_app
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
