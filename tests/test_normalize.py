"""Undoing disguises before the policy matches: each step on its own (the policy's tables test them together)."""

from __future__ import annotations

import pytest

from picsearch.policy.normalize import fold_word, key, normalize, spelled_runs, strip_invisible, unleet


def test_invisible_characters_and_stray_marks_go() -> None:
    assert strip_invisible("g\u200bi\u200dr\u2060l\u00ad") == "girl"
    assert strip_invisible("g\u0332i\u0332") == "gi"
    assert strip_invisible("ёй") == "ёй"  # composed letters keep their marks


@pytest.mark.parametrize(
    ("text", "expected"),
    [("todd1er", "toddier"), ("b00y", "booy"), ("k!d", "kid"), ("b@by", "baby"),
     ("3rd", "3rd"), ("12yo", "12yo"), ("mp3", "mp3"), ("4x4", "4x4"), ("covid19", "covid19"), ("r2d2", "r2d2")],
)
def test_leetspeak_only_between_letters(text: str, expected: str) -> None:
    assert unleet(text) == expected


@pytest.mark.parametrize(
    ("word", "expected"),
    [("gіrl", "girl"), ("мaльчик", "мальчик"), ("кid", "kid"), ("ВОY", "ВОУ"),
     ("girl", "girl"), ("тот", "тот"), ("сор", "сор"), ("café", "café")],
)
def test_mixed_script_words_fold_to_one_script(word: str, expected: str) -> None:
    assert fold_word(word) == expected


def test_a_known_word_breaks_a_tie_between_two_pure_folds() -> None:
    assert fold_word("ВОY", known={"boy"}) == "BOY"


def test_normalize_casefolds_and_unifies() -> None:
    assert normalize("ＢＯＹ’s Ёлка") == "boy's елка"


def test_spelled_runs_need_three_single_letters() -> None:
    assert spelled_runs("g-i-r-l and k i d") == [(0, 7, "girl"), (12, 17, "kid")]
    assert spelled_runs("a 12 y o dog, a b") == []
    assert spelled_runs("t-shirt") == []


def test_key_reads_l_as_i() -> None:
    assert key("child") == key("chiid") == "chiid" and key("kid") == "kid"
