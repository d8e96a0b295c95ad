"""The policy agrees across languages: every English phrase the policy tests block is blocked in Russian too."""

from __future__ import annotations

import re

import pytest

from picsearch.policy import check
from test_policy import BLOCK

# The Russian form of each English phrase of test_policy.BLOCK, as a person would type it.
RUSSIAN = {
    "A child plays in the sand": "ребенок играет в песке",
    "children on a slide": "дети на горке",
    "The CHILDREN'S playground": "ДЕТСКАЯ площадка",
    "A kid on a bike": "ребенок на велике",
    "Kids!": "Детишки!",
    "a boy": "мальчик",
    "boys running": "бегут мальчишки",
    "the boy's kite": "воздушный змей мальчика",
    "A girl in pink": "девочка в розовом",
    "girls' soccer team": "футбольная команда девочек",
    "Girls, at the beach.": "Девочки, на пляже.",
    "a baby in a crib": "младенец в кроватке",
    "babies' toys": "игрушки малышей",
    "toddler": "карапуз",
    "two toddlers": "два карапуза",
    "an infant sleeping": "спящий младенец",
    "teen on a skateboard": "подросток на скейтборде",
    "teenager": "подросток",
    "teenagers at a party": "подростки на вечеринке",
    "teen-aged skaters": "скейтеры-подростки",
    "teenage band": "подростковая группа",
    "pre-teen fashion": "мода для младших подростков",
    "youngster with a ball": "малец с мячом",
    "schoolboy in uniform": "школьник в форме",
    "schoolgirls": "школьницы",
    "little ones at play": "малыши играют",
    "a little one asleep": "малыш спит",
    "young boy": "маленький мальчик",
    "father and son fishing": "отец с сыном на рыбалке",
    "a mother with her daughter": "мама с дочерью",
    "Middle school aged kids at a rally": "школьники средних классов на митинге",
    "birthday girl": "девочка-именинница",
    "baby blue shirt on a baby": "голубая рубашка на малыше",
    "5-year-old": "5-летний",
    "a 5 year old at the zoo": "5-летний малыш в зоопарке",
    "five-year-old girl's party": "праздник пятилетней девочки",
    "Twelve-year-old": "двенадцатилетний",
    "fifteen year olds": "пятнадцатилетние",
    "3 years old": "трехлетний",
    "12 yo": "12-летний",
    "12yo skater": "12-летний скейтер",
    "a 10 y/o": "10-летняя",
    "aged 10": "в возрасте 10 лет",
    "Age 5 and up": "возраст 5 и старше",
    "18-month-old": "полуторагодовалый",
    "a two-week-old puppy": "новорожденный щенок",
    "a year old": "годовалый",
    "2.5 year old": "2,5-летний",
    "a lad and his dog": "мальчишка со своей собакой",
    "two lasses": "две девчушки",
    "pupils on a field trip": "школьники на экскурсии",
    "third-grade class photo": "фото третьеклассников",
    "a 5th grader": "пятиклассник",
    "grandkids at the lake": "внуки на озере",
    "my niece": "моя племянница",
    "a tyke on a trike": "карапуз на трехколесном велосипеде",
    # disguised spellings: the same disguise on the Russian word
    "todd1er": "м\u0061лыш",  # Latin a inside a Cyrillic word
    "chiId": "\u0070\u0065бенок",  # Latin p and e
    "g-i-r-l": "д-е-в-о-ч-к-а",
    "k i d s": "д е т и",
    "ba\u200bby": "мла\u200bденец",
}

CYRILLIC = re.compile("[\u0400-\u04ff]")
ENGLISH_BLOCKED = [text for text in BLOCK if not CYRILLIC.search(text)]


def test_every_english_blocked_phrase_has_a_russian_form() -> None:
    assert sorted(set(ENGLISH_BLOCKED) - set(RUSSIAN)) == []


@pytest.mark.parametrize("english", ENGLISH_BLOCKED)
def test_russian_form_is_blocked_like_the_english(english: str) -> None:
    assert check(english).blocked
    decision = check(RUSSIAN[english])
    assert decision.blocked and decision.matched, decision
