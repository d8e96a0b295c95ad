"""The page's words in each language: one JSON message catalogue per language (``messages/<lang>.json``).

The language comes from ``?lang=`` (the switch on the page), else the ``Accept-Language`` header, else English.
Every catalogue must have exactly the keys of the English one. The API and the CLI stay English: the
legal disclaimer is always shown in its exact English words, with the catalogue's translation under it.
"""

from __future__ import annotations

import json
from functools import lru_cache
from pathlib import Path
from typing import Any

MESSAGES = Path(__file__).parent / "messages"
LANGUAGES = ("en", "ru")
DEFAULT_LANGUAGE = "en"


class CatalogueError(ValueError):
    """A message catalogue is missing, unreadable, or its keys differ from the English catalogue's."""


@lru_cache(maxsize=None)
def catalogue(language: str) -> dict[str, Any]:
    """The messages of ``language`` (one of :data:`LANGUAGES`), checked against the English keys."""
    if language not in LANGUAGES:
        raise CatalogueError(f"no message catalogue for language {language!r}; known: {', '.join(LANGUAGES)}")
    messages = _read(MESSAGES / f"{language}.json")
    reference = messages if language == DEFAULT_LANGUAGE else catalogue(DEFAULT_LANGUAGE)
    missing, extra = sorted(set(reference) - set(messages)), sorted(set(messages) - set(reference))
    if missing or extra:
        raise CatalogueError(f"{MESSAGES / f'{language}.json'}: missing keys {missing}, unknown keys {extra}")
    return messages


def _read(path: Path) -> dict[str, Any]:
    try:
        messages = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        raise CatalogueError(f"{path}: cannot read the message catalogue ({exc})") from exc
    if not isinstance(messages, dict):
        raise CatalogueError(f"{path}: a message catalogue is a JSON object of key -> text")
    return messages


def choose_language(accept_language: str | None, requested: str | None = None) -> str:
    """``requested`` when it is a known language, else the best known language of an ``Accept-Language``
    header ("ru-RU,ru;q=0.9,en;q=0.8" -> "ru"), else :data:`DEFAULT_LANGUAGE`."""
    if requested in LANGUAGES:
        return requested
    ranked = []
    for position, part in enumerate((accept_language or "").split(",")):
        tag, _, params = part.strip().partition(";")
        quality = _quality(params)
        if quality > 0:
            ranked.append((-quality, position, tag.strip().split("-")[0].lower()))
    return next((tag for *_, tag in sorted(ranked) if tag in LANGUAGES), DEFAULT_LANGUAGE)


def _quality(params: str) -> float:
    for param in params.split(";"):
        name, _, value = param.strip().partition("=")
        if name.strip() == "q":
            try:
                return float(value)
            except ValueError:
                return 0.0
    return 1.0
