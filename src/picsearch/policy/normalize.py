"""Undo the disguises a query can wear before the lexicon sees it.

``normalize`` turns text into the plain lower-case words the lexicon is written in:

1. Unicode NFKC (full-width and styled letters, ligatures), then invisible characters dropped:
   format characters (category Cf: zero-width space and joiners, soft hyphen, bidi marks) and
   combining marks left over after composition (Mn, Me);
2. leetspeak inside words: a digit or symbol between two letters reads as the letter it imitates
   (``todd1er``, ``b0y``, ``k!d``); digits at a word's edge stay digits ("3rd", "12yo", "mp3");
3. homoglyphs: a word mixing scripts is folded to one script with the Unicode confusables data
   (TR39, shipped by ``confusable_homoglyphs``): ``gіrl`` with a Cyrillic ``і`` becomes Latin ``girl``,
   ``мaльчик`` with a Latin ``a`` becomes Cyrillic. A word written wholly in one script is left alone,
   so Russian words are never read as English look-alikes;
4. casefold, ``ё`` -> ``е``, typographic apostrophes -> ``'``;
5. spaced-out letters: three or more single letters joined by spaces or punctuation
   (``g-i-r-l``, ``g i r l``, ``g.i.r.l``) become one word, marked *spelled*.

:func:`key` then merges the letters that look alike even in one script, ``i`` and ``l``
(``chiId`` with a capital I; ``todd1er``), for comparing words with the lexicon.
"""

from __future__ import annotations

import re
import unicodedata
from functools import cache
from typing import Collection

_INVISIBLE = {"Cf", "Mn", "Me"}
_LEET = str.maketrans({"0": "o", "1": "i", "3": "e", "4": "a", "5": "s", "7": "t", "8": "b",
                       "@": "a", "$": "s", "!": "i", "|": "l"})
# A run of leet characters with a letter on both sides.
_LEET_RUN = re.compile(r"(?<=[^\W\d_])[0134578@$!|]+(?=[^\W\d_])")
_APOSTROPHES = str.maketrans({"\u2019": "'", "\u02bc": "'", "`": "'", "\u00b4": "'"})
_LETTERS = re.compile(r"[^\W\d_]+")
# Three or more single letters, each pair separated by one to three non-letters (spaces, -, ., _, *).
_SPELLED = re.compile(r"(?<![^\W_])[^\W\d_](?![^\W_])(?:[\W_]{1,3}[^\W\d_](?![^\W_])){2,}")
_RUSSIAN = frozenset("абвгдежзийклмнопрстуфхцчшщъыьэюяАБВГДЕЖЗИЙКЛМНОПРСТУФХЦЧШЩЪЫЬЭЮЯ")
_SMALL_CAPITAL = re.compile(r"LATIN LETTER SMALL CAPITAL ([A-Z])")
_KRA = {"ĸ": "k"}  # TR39's prototype of Cyrillic к: a small capital K in all but name
LATIN, CYRILLIC = "LATIN", "CYRILLIC"


def strip_invisible(text: str) -> str:
    """NFKC, then without format characters and stray combining marks."""
    return "".join(ch for ch in unicodedata.normalize("NFKC", text) if unicodedata.category(ch) not in _INVISIBLE)


def unleet(text: str) -> str:
    """Digits and symbols between letters read as letters: ``todd1er`` -> ``toddier``, ``b0y`` -> ``boy``."""
    return _LEET_RUN.sub(lambda m: m.group().translate(_LEET), text)


@cache
def _script(ch: str) -> str:
    from confusable_homoglyphs.categories import alias

    return alias(ch)


def _plain(candidate: str, script: str) -> str | None:
    """``candidate`` as a plain letter of ``script`` (a-z, or the Russian alphabet), if it is one.

    TR39 gives some Cyrillic lower-case letters a Latin small capital as prototype (``т`` -> ``ᴛ``,
    ``к`` -> ``ĸ``): those read as the plain letter they are a small form of."""
    if script == CYRILLIC:
        return candidate if candidate in _RUSSIAN else None
    if candidate.isascii() and candidate.isalpha():
        return candidate
    if candidate in _KRA:
        return _KRA[candidate]
    small_capital = _SMALL_CAPITAL.fullmatch(unicodedata.name(candidate, ""))
    return small_capital.group(1).lower() if small_capital else None


@cache
def _look_alike(ch: str, script: str) -> str:
    """The letter of ``script`` that ``ch`` looks like (TR39 confusables), else ``ch`` itself."""
    from confusable_homoglyphs.confusables import confusables_data

    found = [p for p in (_plain(h["c"], script) for h in confusables_data.get(ch, []) if len(h["c"]) == 1) if p]
    same_case = [c for c in found if c.isupper() == ch.isupper()]
    return (same_case or found or [ch])[0]


def _fold_to(word: str, script: str) -> str:
    return "".join(ch if _script(ch) == script else _look_alike(ch, script) for ch in word)


def _pure(word: str, script: str) -> bool:
    return all(_script(ch) == script for ch in word)


def fold_word(word: str, known: Collection[str] = ()) -> str:
    """A word of letters mixing scripts, folded to the Latin or Cyrillic script it imitates.

    Of the folds, one that leaves a single script wins; of two such (``ВОY`` reads as both ``ВОУ``
    and ``BOY``), the one whose :func:`key` is in ``known``, else the script most letters already use."""
    if word.isascii() or _pure(word, LATIN) or _pure(word, CYRILLIC):
        return word
    latin, cyrillic = sum(_script(ch) == LATIN for ch in word), sum(_script(ch) == CYRILLIC for ch in word)
    order = (LATIN, CYRILLIC) if latin >= cyrillic else (CYRILLIC, LATIN)
    folds = [fold for fold, script in ((_fold_to(word, s), s) for s in order) if _pure(fold, script)]
    folds.sort(key=lambda fold: key(fold.casefold()) not in known)  # stable: majority order among equals
    return (folds or [_fold_to(word, order[0])])[0]


def normalize(text: str, known: Collection[str] = ()) -> str:
    """Steps 1-4 of the module docstring: the plain lower-case text the lexicon is matched against.

    ``known`` (keys of lexicon words) breaks ties between two readings of a homoglyph word."""
    text = unleet(strip_invisible(text))
    text = _LETTERS.sub(lambda m: fold_word(m.group(), known), text)
    return text.casefold().replace("ё", "е").translate(_APOSTROPHES)


def spelled_runs(text: str) -> list[tuple[int, int, str]]:
    """(start, end, joined letters) of each spaced-out word in normalized ``text`` (step 5)."""
    return [(m.start(), m.end(), "".join(_LETTERS.findall(m.group()))) for m in _SPELLED.finditer(text)]


def key(token: str) -> str:
    """``token`` with ``l`` read as ``i``: the two look alike (``chiId``, ``todd1er``), so compare keys."""
    return token.replace("l", "i")
