"""Child-content policy: is a text about children under 16?

The words live in ``lexicon.toml`` (data a reviewer can read, with the reason for each entry); this
module normalizes text into tokens (undoing disguises first: homoglyphs, invisible characters,
leetspeak, spaced-out letters, see :mod:`picsearch.policy.normalize`) and matches whole tokens and
token sequences, so look-alikes ("kidney", "cowboy", "nineteen") never hit. A blocked query gets
:data:`DISCLAIMER` instead of pictures.
"""

from __future__ import annotations

import re
import tomllib
from dataclasses import dataclass
from functools import cache
from importlib import resources
from typing import Any, Collection

from picsearch.policy.normalize import key, normalize, spelled_runs

DISCLAIMER = "This image is unavailable in your country in compliance with local laws"

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


def _split(norm: str) -> list[str]:
    # "girls'" loses its apostrophe because the token pattern never ends on one.
    return [_POSSESSIVE.sub("", tok) for tok in _TOKEN.findall(norm)]


def _words(text: str, known: Collection[str] = ()) -> list[tuple[str, bool]]:
    """(token, spelled) pairs: spelled marks a word that was written as spaced-out letters."""
    norm, words, done = normalize(text, known), [], 0
    for start, end, joined in spelled_runs(norm):
        words += [(tok, False) for tok in _split(norm[done:start])] + [(joined, True)]
        done = end
    return words + [(tok, False) for tok in _split(norm[done:])]


def tokens(text: str) -> list[str]:
    """Normalized tokens (see :func:`picsearch.policy.normalize.normalize`), possessives dropped, split at
    hyphens and punctuation; spaced-out letters ("g-i-r-l") joined into one token."""
    return [tok for tok, _ in _words(text)]


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

    words: frozenset[str]
    """The one-word forms."""
    vocabulary: frozenset[str]
    """Every word of every form."""


def _keys(words: list[str]) -> frozenset[str]:
    return frozenset(key(word) for word in words)


def _phrase(form: str, where: str) -> Phrase:
    """The keys of ``form``'s tokens: lexicon and text are compared key by key."""
    toks = tuple(key(tok) for tok in tokens(form))
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
        words=frozenset(p[0] for p in phrases if len(p) == 1),
        vocabulary=frozenset(word for p in phrases for word in p),
        exceptions=frozenset(exceptions),
        longest=max(len(p) for p in phrases | exceptions),
        age=_Age(
            max_age=float(age["max_age_exclusive"]),
            before_number=_keys(age["before_number"]),
            articles=_keys(age["articles"]),
            short_years=frozenset(_phrase(f, "age.short_years") for f in age["short_years"]),
            old=_keys(age["old"]),
            ru_adjective=_keys(age["ru_year_adjective"]),
            unit_years={key(k): float(v) for k, v in age["unit_years"].items()},
            number_words={key(k): int(v) for k, v in age["number_words"].items()},
            tens_words={key(k): int(v) for k, v in age["tens_words"].items()},
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


def _spelled_spans(words: list[tuple[str, bool]], lex: _Lexicon, taken: set[int]) -> list[tuple[int, int]]:
    """Spelled-out tokens that contain a one-word form anywhere ("a g i r l" -> "agirl" holds "girl")."""
    def hit(word: str) -> bool:
        k = key(word)
        return any(k[a:b] in lex.words for a in range(len(k)) for b in range(a + 1, len(k) + 1))

    return [(i, i + 1) for i, (word, spelled) in enumerate(words) if spelled and i not in taken and hit(word)]


def check(text: str) -> PolicyDecision:
    """Decide whether ``text`` is about children under 16 (see ``lexicon.toml`` for the rules)."""
    lex = _lexicon()
    words = _words(text, lex.vocabulary)
    toks = [tok for tok, _ in words]
    keys = [key(tok) for tok in toks]
    taken: set[int] = set()
    _phrase_spans(keys, lex.exceptions, lex.longest, taken)
    ages = [(a, b) for a, b in _age_spans(keys, lex.age) if not taken.intersection(range(a, b))]
    spans = sorted(_phrase_spans(keys, lex.phrases, lex.longest, taken) + ages)
    spans = sorted(spans + _spelled_spans(words, lex, taken))
    matched = list(dict.fromkeys(" ".join(toks[a:b]) for a, b in spans))
    return PolicyDecision(text=text, blocked=bool(matched), matched=matched)


def is_blocked(text: str) -> bool:
    """True when ``text`` is about children and must get the disclaimer instead of pictures."""
    return check(text).blocked


__all__ = ["DISCLAIMER", "PolicyDecision", "check", "is_blocked", "tokens"]
