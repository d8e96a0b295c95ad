"""Child-content policy: the lexicon matcher, the training-data filter and the `policy` command."""

from __future__ import annotations

import json
from dataclasses import replace
from pathlib import Path

import pandas as pd
import pytest
import typer
from typer.testing import CliRunner

from picsearch.data import load_dataset
from picsearch.data.tables import Dataset, caption_image
from picsearch.interfaces.cli import policy as policy_cli
from picsearch.policy import DISCLAIMER, PolicyDecision, _parse, check, is_blocked, tokens
from picsearch.policy.filter import child_images, training_filter

BLOCK = [
    # English child words, plurals, possessives, case, punctuation
    "A child plays in the sand",
    "children on a slide",
    "The CHILDREN'S playground",
    "A kid on a bike",
    "Kids!",
    "a boy",
    "boys running",
    "the boy's kite",
    "A girl in pink",
    "girls' soccer team",
    "Girls, at the beach.",
    "a baby in a crib",
    "babies' toys",
    "toddler",
    "two toddlers",
    "an infant sleeping",
    "teen on a skateboard",
    "teenager",
    "teenagers at a party",
    "teen-aged skaters",
    "teenage band",
    "pre-teen fashion",
    "youngster with a ball",
    "schoolboy in uniform",
    "schoolgirls",
    "little ones at play",
    "a little one asleep",
    "young boy",
    "father and son fishing",
    "a mother with her daughter",
    "Middle school aged kids at a rally",
    "birthday girl",
    "baby blue shirt on a baby",
    # ages
    "5-year-old",
    "a 5 year old at the zoo",
    "five-year-old girl's party",
    "Twelve-year-old",
    "fifteen year olds",
    "3 years old",
    "12 yo",
    "12yo skater",
    "a 10 y/o",
    "aged 10",
    "Age 5 and up",
    "18-month-old",
    "a two-week-old puppy",  # age expressions do not know their subject (documented)
    "a year old",
    "2.5 year old",
    # Russian, with ё/е and case forms
    "ребёнок",
    "Ребенок на качелях",
    "ребёнка",
    "дети",
    "фото детей",
    "детям",
    "детская площадка",
    "в детском саду",
    "мальчик",
    "мальчики играют",
    "с мальчиком",
    "девочка",
    "девочке пять лет",
    "две девочки",
    "девочек",
    "малыш",
    "с малышом",
    "малышка",
    "подросток",
    "подростки",
    "подростков",
    "школьник",
    "школьница",
    "школьницы в форме",
    "младенец",
    "младенцы",
    "пятилетний",
    "5-летний",
    "сын",
    "с дочкой",
    "ДЕТИ!",
    # words found missing by category (kinship, informal, school and care), and disguises
    "a lad and his dog",
    "two lasses",
    "pupils on a field trip",
    "third-grade class photo",
    "a 5th grader",
    "grandkids at the lake",
    "my niece",
    "a tyke on a trike",
    "внуки на даче",
    "с племянницей",
    "третьеклассник",
    "gіrl",
    "todd1er",
    "chiId",
    "g-i-r-l",
    "k i d s",
    "ba\u200bby",
]

ALLOW = [
    "",
    "A dog runs on the beach",
    "kidney beans",
    "a skid mark",
    "Are you kidding me?",
    "my boyfriend",
    "girlfriend and boyfriend",
    "a cowboy on a horse",
    "cowboys",
    "a showgirl",
    "boyish grin",
    "nineteen",
    "nineteen-year-old",
    "the canteen",
    "Babylon",
    "a young man",
    "a young woman",
    "young adults",
    "20-year-old",
    "twenty-five-year-old runner",
    "a 100-year-old house",
    "1,000-year-old tree",
    "16 year old",
    "sixteen-year-old",
    "aged 30",
    "middle aged man",
    "aged cheese",
    "a baby blue car",
    "a dog in a kiddie pool",
    "Ice Age 2",
    "a minor injury",
    "the boxer",
    "Tennessee",
    "sonar",
    "teeny tiny",
    "детектив",
    "мальчишник",
    "девушка",
    "юноша",
    "летний день",
    "дочерняя компания",
    "сыр",
    "20-летний",
    "skidding",
    "Nicole Kidman",
    "a ladder",
    "lasso",
    "a dilated pupil",
    "first class seats",
    "grade A eggs",
    "college freshman",
    "twins",
    "h2o",
    "B-52 bomber",
    "ученый",
    "тот",
]


@pytest.mark.parametrize("text", BLOCK)
def test_blocks_child_texts(text: str) -> None:
    decision = check(text)
    assert decision.blocked and decision.matched, decision


@pytest.mark.parametrize("text", ALLOW)
def test_allows_other_texts(text: str) -> None:
    assert check(text) == PolicyDecision(text=text, blocked=False, matched=[])


def test_case_table_is_large_and_distinct() -> None:
    assert len(BLOCK) + len(ALLOW) >= 80
    assert not set(BLOCK) & set(ALLOW)


@pytest.mark.parametrize(
    ("text", "matched"),
    [
        ("Two girls' 5-year-old brothers", ["girls", "5 year old"]),
        ("Little ones and a boy's kite", ["little ones", "boy"]),
        ("teen-aged", ["teen"]),
        ("Ребёнок и дети", ["ребенок", "дети"]),
        ("a boy, a boy", ["boy"]),
        ("aged twelve", ["aged twelve"]),
        ("a dog in a kiddie pool with kiddies", ["kiddies"]),
    ],
)
def test_matched_lists_normalized_hits_in_order(text: str, matched: list[str]) -> None:
    assert check(text).matched == matched


def test_tokens_normalize() -> None:
    assert tokens("Girls' 5-Year-Old ребЁнок’s ＫＩＤ") == ["girls", "5", "year", "old", "ребенок", "kid"]


def test_is_blocked_and_disclaimer() -> None:
    assert is_blocked("a little girl") and not is_blocked("a little dog")
    assert DISCLAIMER == "This image is unavailable in your country in compliance with local laws"


def test_bad_lexicon_names_the_entry() -> None:
    age = {"max_age_exclusive": 16, "before_number": [], "articles": [], "short_years": [], "old": [],
           "ru_year_adjective": [], "unit_years": {}, "number_words": {}, "tens_words": {}}
    entries = [{"forms": ["kid"]}, {"stems": ["x"], "endings": "nope"}]
    with pytest.raises(ValueError, match="entry 2: unknown paradigm 'nope'"):
        _parse({"entry": entries, "age": age})
    with pytest.raises(ValueError, match="entry 1: form '--' has no letters"):
        _parse({"entry": [{"forms": ["--"]}], "age": age})


# --- CLI -----------------------------------------------------------------------------------------


@pytest.fixture()
def cli() -> typer.Typer:
    app = typer.Typer()
    app.callback()(lambda: None)  # keep `policy` a sub-command, as in the real app
    policy_cli.register(app, typer.Typer())
    return app


def test_cli_text(cli: typer.Typer) -> None:
    result = CliRunner().invoke(cli, ["policy", "Two girls' 5-year-old"])
    assert result.exit_code == 0
    assert "BLOCKED" in result.stdout and "girls, 5 year old" in result.stdout
    allowed = CliRunner().invoke(cli, ["policy", "kidney beans"])
    assert allowed.exit_code == 0 and allowed.stdout.startswith("allowed")


def test_cli_file_json(cli: typer.Typer, tmp_path: Path) -> None:
    queries = tmp_path / "q.txt"
    queries.write_text("A boy\n\n  \nkidney beans\nдетей на площадке\n", encoding="utf-8")
    result = CliRunner().invoke(cli, ["policy", "--file", str(queries), "--json"])
    assert result.exit_code == 0
    assert [json.loads(line) for line in result.stdout.splitlines()] == [
        {"text": "A boy", "blocked": True, "matched": ["boy"]},
        {"text": "kidney beans", "blocked": False, "matched": []},
        {"text": "детей на площадке", "blocked": True, "matched": ["детей"]},
    ]


def test_cli_file_human(cli: typer.Typer, tmp_path: Path) -> None:
    queries = tmp_path / "q.txt"
    queries.write_text("a cowboy\nteen-aged\n", encoding="utf-8")
    lines = CliRunner().invoke(cli, ["policy", "--file", str(queries)]).stdout.splitlines()
    assert lines[0].startswith("allowed") and lines[1].startswith("BLOCKED")


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--file", "MISSING"], "file not found"),
        ([], "give a query TEXT or --file FILE"),
        (["a boy", "--file", "x.txt"], "give a query TEXT or --file FILE"),
    ],
)
def test_cli_errors(cli: typer.Typer, tmp_path: Path, args: list[str], message: str) -> None:
    args = [str(tmp_path / a) if a == "MISSING" else a for a in args]
    result = CliRunner().invoke(cli, ["policy", *args])
    assert result.exit_code == 2
    assert message in result.stderr and len(result.stderr.strip().splitlines()) == 1


# --- Training-data filter ---------------------------------------------------------------------


def _tiny_dataset() -> Dataset:
    """a.jpg: own caption about a girl; b.jpg: dog captions only, but the crowd confirms a child caption;
    c.jpg: crowd rejects the child caption; d.jpg: plain; t.jpg: test image with a boy caption."""
    captions = {"a.jpg#0": "A girl runs", "a.jpg#1": "A person runs", "b.jpg#0": "A dog sits",
                "c.jpg#0": "A man walks", "d.jpg#0": "A cat sleeps"}
    train = pd.DataFrame(
        [("d.jpg", q, text) for q, text in captions.items()], columns=["image", "query_id", "query_text"]
    )
    expert = pd.DataFrame(
        [("a.jpg", "a.jpg#1", 4, 4, 4), ("b.jpg", "b.jpg#0", 4, 4, 3), ("c.jpg", "a.jpg#0", 1, 1, 1),
         ("d.jpg", "d.jpg#0", 4, 4, 4), ("d.jpg", "c.jpg#0", 1, 1, 2)],
        columns=["image", "query_id", "first_exp", "second_exp", "third_exp"],
    )
    crowd = pd.DataFrame(
        [("b.jpg", "a.jpg#0", 1.0, 3, 0), ("c.jpg", "a.jpg#0", 0.0, 0, 3), ("d.jpg", "x.jpg#0", 0.0, 0, 3),
         ("d.jpg", "d.jpg#0", 1.0, 3, 0)],
        columns=["image", "query_id", "true_frac", "true_cnt", "false_cnt"],
    )
    tests = pd.DataFrame([("t.jpg#0", "Two boys play", "t.jpg")], columns=["query_id", "query_text", "image"])
    return Dataset(root=Path("."), train=train, expert=expert, crowd=crowd, test_queries=tests)


def test_child_images_from_own_and_crowd_confirmed_captions() -> None:
    assert child_images(_tiny_dataset()) == {"a.jpg", "b.jpg", "t.jpg"}


def test_child_images_from_expert_confirmed_captions() -> None:
    """c.jpg was paired with the girl caption a.jpg#0; experts confirming it (mean >= 3) make c.jpg a child image,
    a mean just under 3 does not."""
    base = _tiny_dataset()
    for scores, expected in (((3, 4, 3), {"a.jpg", "b.jpg", "c.jpg", "t.jpg"}), ((2, 3, 3), {"a.jpg", "b.jpg", "t.jpg"})):
        expert = base.expert.copy()
        expert.loc[2, ["first_exp", "second_exp", "third_exp"]] = scores
        assert child_images(replace(base, expert=expert)) == expected


def test_training_filter_masks_and_counts() -> None:
    result = training_filter(_tiny_dataset())
    assert result.blocked_queries == {"a.jpg#0", "t.jpg#0"}
    # a.jpg row: image rule; b.jpg row: image rule (crowd-confirmed); c.jpg row: text rule; d rows kept
    assert result.expert_keep.tolist() == [False, False, False, True, True]
    assert (result.expert.text_only, result.expert.image_only, result.expert.both) == (1, 2, 0)
    assert (result.expert.removed, result.expert.remaining) == (3, 2)
    assert (result.expert.images_total, result.expert.images_removed) == (4, 3)
    # b.jpg/a.jpg#0: both rules; c.jpg/a.jpg#0: text rule only; unknown caption x.jpg#0 kept
    assert result.crowd_keep.tolist() == [False, False, True, True]
    assert (result.crowd.text_only, result.crowd.image_only, result.crowd.both) == (1, 0, 1)
    table = result.counts_table()
    assert table.loc["expert", "remaining"] == 2 and table.loc["crowd", "removed"] == 2


@pytest.mark.data
def test_filter_on_real_data(real_data: Path) -> None:
    dataset = load_dataset(real_data)
    result = training_filter(dataset)
    texts = dataset.query_texts()
    for _, counts in result.tables():
        assert 0 < counts.removed < counts.total
        assert counts.remaining + counts.removed == counts.total
        assert 0 < counts.images_removed < counts.images_total
    assert result.expert.total == 5822 and result.crowd.total == 47830
    assert int(result.expert_keep.sum()) == result.expert.remaining
    assert int(result.crowd_keep.sum()) == result.crowd.remaining
    # Flickr8k is full of children: a sizeable share, but not most, of the images.
    assert 0.15 < len(result.child_images) / len({caption_image(q) for q in texts}) < 0.6
    # Read by hand: own caption "A girl wearing a yellow shirt and sunglasses smiles ."; own caption about a
    # man on a bicycle, but 2 of 3 crowd workers confirm "A young boy is riding a bike ."; own caption about a
    # woman signalling to traffic, and only 1 of 3 confirms "a young girl wearing blue smiles .".
    assert {"2718495608_d8533e3ac5.jpg", "1262583859_653f1469a9.jpg"} <= result.child_images
    assert "1056338697_4f7d7ce270.jpg" not in result.child_images
    # Own caption "A conference is being held that involves laptops and big screen presentations ."; the experts
    # (mean 3.33) confirm "Children sit in front of a computer while their teacher instructs them ."; no crowd vote.
    assert "3044746136_8b89da5f40.jpg" in result.child_images
    assert all(is_blocked(texts[q]) for q in result.blocked_queries)
    kept = dataset.expert[result.expert_keep]
    assert not kept["image"].isin(result.child_images).any()
    assert not any(is_blocked(texts[q]) for q in kept["query_id"])
