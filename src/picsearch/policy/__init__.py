"""Child-content policy: is a text about children under 16?

The words live in ``lexicon.toml`` (data a reviewer can read, with the reason for each entry); this
module normalizes text into tokens and matches whole tokens and token sequences, so look-alikes
("kidney", "cowboy", "nineteen") never hit. A blocked query gets :data:`DISCLAIMER` instead of pictures.
"""

from __future__ import annotations

import re
import tomllib
import unicodedata
from dataclasses import dataclass
from functools import cache
from importlib import resources
from typing import Any

DISCLAIMER = "This image is unavailable in your country in compliance with local laws"

_APOSTROPHES = str.maketrans({"\u2019": "'", "\u02bc": "'", "`": "'", "\u00b4": "'"})
# A number ("12", "2.5", "1,000") or a run of letters with inner apostrophes ("boy's", "don't").
_TOKEN = re.compile(r"\d+(?:[.,]\d+)?|[^\W\d_]+(?:'[^\W\d_]+)*")
_POSSESSIVE = re.compile(r"'s$")

Phrase = tuple[str, ...]


@dataclass(frozen=True)
class PolicyDecision:
    """The verdict on one text: ``matched`` lists the normalized words/phrases that blocked it."""

    text: str
    blocked: bool
    matched: list[str]


def tokens(text: str) -> list[str]:
    """Normalized tokens: NFKC, casefold, ё→е, possessives dropped, split at hyphens and punctuation."""
    norm = unicodedata.normalize("NFKC", text).casefold().replace("ё", "е").translate(_APOSTROPHES)
    # "girls'" loses its apostrophe because the token pattern never ends on one.
    return [_POSSESSIVE.sub("", tok) for tok in _TOKEN.findall(norm)]


@dataclass(frozen=True)
class _Age:
    max_age: float
    before_number: frozenset[str]
    articles: frozenset[str]
    short_years: frozenset[Phrase]
    old: frozenset[str]
    ru_adjective: frozenset[str]
    unit_years: dict[str, float]
    number_words: dict[str, int]
    tens_words: dict[str, int]


@dataclass(frozen=True)
class _Lexicon:
    phrases: frozenset[Phrase]
    exceptions: frozenset[Phrase]
    longest: int
    age: _Age


def _phrase(form: str, where: str) -> Phrase:
    toks = tuple(tokens(form))
    if not toks:
        raise ValueError(f"lexicon.toml: {where}: form {form!r} has no letters or digits")
    return toks


def _entry_forms(entry: dict[str, Any], paradigms: dict[str, list[str]], where: str) -> list[str]:
    forms = list(entry.get("forms", []))
    endings = entry.get("endings", [""])
    if isinstance(endings, str):
        if endings not in paradigms:
            raise ValueError(f"lexicon.toml: {where}: unknown paradigm {endings!r}")
        endings = paradigms[endings]
    forms += [stem + ending for stem in entry.get("stems", []) for ending in endings]
    if not forms:
        raise ValueError(f"lexicon.toml: {where}: needs `forms` or `stems`")
    return forms


def _parse(raw: dict[str, Any]) -> _Lexicon:
    paradigms = raw.get("paradigms", {})
    phrases = {
        _phrase(form, f"entry {i + 1}")
        for i, entry in enumerate(raw.get("entry", []))
        for form in _entry_forms(entry, paradigms, f"entry {i + 1}")
    }
    exceptions = {
        _phrase(form, f"exception {i + 1}") for i, ex in enumerate(raw.get("exception", [])) for form in ex["phrases"]
    }
    age = raw["age"]
    return _Lexicon(
        phrases=frozenset(phrases),
        exceptions=frozenset(exceptions),
        longest=max(len(p) for p in phrases | exceptions),
        age=_Age(
            max_age=float(age["max_age_exclusive"]),
            before_number=frozenset(age["before_number"]),
            articles=frozenset(age["articles"]),
            short_years=frozenset(_phrase(f, "age.short_years") for f in age["short_years"]),
            old=frozenset(age["old"]),
            ru_adjective=frozenset(age["ru_year_adjective"]),
            unit_years={k: float(v) for k, v in age["unit_years"].items()},
            number_words={k: int(v) for k, v in age["number_words"].items()},
            tens_words={k: int(v) for k, v in age["tens_words"].items()},
        ),
    )


@cache
def _lexicon() -> _Lexicon:
    """The packaged lexicon, read and compiled once on first use."""
    with resources.files(__name__).joinpath("lexicon.toml").open("rb") as fh:
        return _parse(tomllib.load(fh))


def _number_before(toks: list[str], end: int, age: _Age, articles: bool = True) -> tuple[float, int] | None:
    """The number ending just before ``end`` and the index where it starts ("twenty five" -> 25)."""
    if end <= 0:
        return None
    tok = toks[end - 1]
    if tok[0].isdigit():
        thousands = re.fullmatch(r"\d+,\d{3}", tok)
        return float(tok.replace(",", "" if thousands else ".")), end - 1
    if tok in age.tens_words:
        return float(age.tens_words[tok]), end - 1
    if tok in age.number_words:
        value = age.number_words[tok]
        if value < 10 and end >= 2 and toks[end - 2] in age.tens_words:
            return float(age.tens_words[toks[end - 2]] + value), end - 2
        return float(value), end - 1
    if articles and tok in age.articles:  # "a year old"
        return 1.0, end - 1
    return None


def _number_after(toks: list[str], start: int, age: _Age) -> tuple[float, int] | None:
    """The number starting at ``start`` and the index just after it ("aged twenty five")."""
    for end in (start + 2, start + 1):  # prefer "twenty five" over "twenty"
        found = _number_before(toks, end, age, articles=False) if end <= len(toks) else None
        if found is not None and found[1] == start:
            return found[0], end
    return None


def _age_at(toks: list[str], i: int, age: _Age) -> tuple[int, int, float] | None:
    """(start, end, age in years) of an age expression anchored at token ``i``, if any."""
    tok = toks[i]
    if tok in age.before_number:
        found = _number_after(toks, i + 1, age)
        return (i, found[1], found[0]) if found else None
    if tok in age.unit_years and toks[i + 1 : i + 2] and toks[i + 1] in age.old:
        years, end = age.unit_years[tok], i + 2
    elif tok in age.ru_adjective:
        years, end = 1.0, i + 1
    else:
        short = next((s for s in age.short_years if tuple(toks[i : i + len(s)]) == s), None)
        if short is None:
            return None
        years, end = 1.0, i + len(short)
    found = _number_before(toks, i, age)
    return (found[1], end, found[0] * years) if found else None


def _age_spans(toks: list[str], age: _Age) -> list[tuple[int, int]]:
    """Token spans [start, end) of age expressions below the limit."""
    found = [_age_at(toks, i, age) for i in range(len(toks))]
    return [(start, end) for start, end, years in (f for f in found if f) if years < age.max_age]


def _phrase_spans(toks: list[str], phrases: frozenset[Phrase], longest: int, taken: set[int]) -> list[tuple[int, int]]:
    """Spans of the longest phrases at each position, skipping tokens already ``taken``."""
    spans = []
    for i in range(len(toks)):
        for n in range(min(longest, len(toks) - i), 0, -1):
            if tuple(toks[i : i + n]) in phrases and not taken.intersection(range(i, i + n)):
                spans.append((i, i + n))
                taken.update(range(i, i + n))
                break
    return spans


def check(text: str) -> PolicyDecision:
    """Decide whether ``text`` is about children under 16 (see ``lexicon.toml`` for the rules)."""
    lex = _lexicon()
    toks = tokens(text)
    taken: set[int] = set()
    _phrase_spans(toks, lex.exceptions, lex.longest, taken)
    ages = [(a, b) for a, b in _age_spans(toks, lex.age) if not taken.intersection(range(a, b))]
    spans = sorted(_phrase_spans(toks, lex.phrases, lex.longest, taken) + ages)
    matched = list(dict.fromkeys(" ".join(toks[a:b]) for a, b in spans))
    return PolicyDecision(text=text, blocked=bool(matched), matched=matched)


def is_blocked(text: str) -> bool:
    """True when ``text`` is about children and must get the disclaimer instead of pictures."""
    return check(text).blocked


__all__ = ["DISCLAIMER", "PolicyDecision", "check", "is_blocked", "tokens"]
