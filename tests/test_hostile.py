"""Hostile and careless inputs (issue 16), as tables: a new case is one more row.

- disguised child queries the policy must refuse, and harmless look-alikes it must let through;
- user text with Rich markup or emoji codes, which the CLI must print as it is;
- broken model files, which must give one line naming the file (exit 2 in the CLI), never a traceback;
- HEAD requests, answered wherever GET is;
- `embed` on a dataset `validate` finds problems in.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path
from typing import Callable

import pytest
from fastapi.testclient import TestClient
from typer.testing import CliRunner

from picsearch.data.validate import validate_dataset
from picsearch.interfaces.cli import app
from picsearch.interfaces.web import create_app
from picsearch.models import ArtifactError, RelevanceBundle
from picsearch.policy import check
from picsearch.search.searcher import validated_candidates
from test_artifacts import bundle  # noqa: F401  (the tiny trained bundle fixture)
from tiny_dataset import replace_line, write_tiny_dataset
from web_gallery import WordSearcher, write_gallery

# --- Disguised child queries: (query, the disguise) ------------------------------------------------
DISGUISED = [
    ("gіrl", "Cyrillic і inside a Latin word"),
    ("a little gіrl on a swing", "Cyrillic і, in a sentence"),
    ("ВОY", "Cyrillic В and О with a Latin Y"),
    ("кid", "Cyrillic к"),
    ("ѕоn", "Cyrillic ѕ and о"),
    ("мaльчик", "Latin a inside a Russian word"),
    ("дeти", "Latin e inside a Russian word"),
    ("g\u200birl", "zero-width space"),
    ("chi\u200dld", "zero-width joiner"),
    ("tod\u00addler", "soft hyphen"),
    ("b\u2060oy", "word joiner"),
    ("g̲i̲r̲l̲", "combining underlines"),
    ("ｇｉｒｌ", "full-width letters"),
    ("𝐤𝐢𝐝𝐬", "mathematical bold letters"),
    ("todd1er", "digit 1 for l"),
    ("chiId", "capital I for l"),
    ("Iad", "capital I for l at the start"),
    ("b0y", "digit 0 for o"),
    ("k!ds", "! for i"),
    ("t33n", "digit 3 for e"),
    ("b@by", "@ for a"),
    ("д3ти", "digit 3 for е in Russian"),
    ("g-i-r-l", "letters split by hyphens"),
    ("g i r l", "letters split by spaces"),
    ("g.i.r.l.s", "letters split by dots"),
    ("a g i r l", "spelled word after an article"),
    ("t o d d l e r s playing", "spelled word in a sentence"),
    ("д е т и", "spelled Russian word"),
    ("lad", "missing word: lad"),
    ("a lass on the beach", "missing word: lass"),
    ("pupils in class", "missing word: pupil"),
    ("third grade", "missing phrase: third grade"),
    ("a 3rd-grader", "grade as a number"),
    ("tenth graders", "grade 10 is age 15-16"),
    ("my grandson", "kinship"),
    ("a niece and a nephew", "kinship"),
    ("stepdaughter", "kinship"),
    ("a daycare center", "care role"),
    ("nursery school", "care role"),
    ("little league game", "children's sport"),
    ("внучка", "Russian kinship"),
    ("с внуком", "Russian kinship, instrumental"),
    ("ученики", "Russian pupils"),
    ("пятиклассница", "Russian fifth-grader"),
    ("новорождённый", "Russian newborn"),
]

# --- Harmless look-alikes: (query, why it looks suspicious) -----------------------------------------
HARMLESS = [
    ("kidney beans", "contains kid"),
    ("a cowboy on a horse", "contains boy"),
    ("nineteen", "contains teen"),
    ("skidding on ice", "contains kid"),
    ("Nicole Kidman", "contains kid"),
    ("lasso", "contains lass"),
    ("a ladder against a wall", "contains lad"),
    ("salad bowl", "contains lad"),
    ("Gladys", "contains lad"),
    ("a dilated pupil", "the eye's pupil"),
    ("the sonics", "contains son"),
    ("a chill evening", "i/l look-alike of child?"),
    ("mp3 player", "digit in a word"),
    ("a 4x4 truck", "digits around a letter"),
    ("U S A flag", "spaced-out letters"),
    ("a T-shirt", "a single letter"),
    ("тот дом", "Russian word of Latin look-alikes"),
    ("сор", "Russian word of Latin look-alikes"),
    ("ученый", "Russian scientist, not ученик"),
    ("a young man climbing", "adult"),
    ("two women playing ball", "adult"),
    ("a dog runs through the water", "plain query"),
]


@pytest.mark.parametrize(("query", "disguise"), DISGUISED, ids=[d for _, d in DISGUISED])
def test_disguised_child_query_is_refused(query: str, disguise: str) -> None:
    assert check(query).blocked, f"{query!r} ({disguise}) got past the policy"


@pytest.mark.parametrize(("query", "why"), HARMLESS, ids=[q for q, _ in HARMLESS])
def test_harmless_look_alike_passes(query: str, why: str) -> None:
    decision = check(query)
    assert not decision.blocked, f"{query!r} ({why}) blocked by {decision.matched}"


# --- User text with markup or emoji codes, through CLI output ---------------------------------------
MARKUP = ["a dog [/]", "[bold]red[/bold] ball", "[link=http://x]y[/link]", "train_dataset.csv:100: [red]", ":smile:"]
runner = CliRunner()


@pytest.mark.parametrize("text", MARKUP)
def test_policy_prints_user_text_verbatim(text: str) -> None:
    result = runner.invoke(app, ["policy", text])
    assert result.exit_code == 0 and f"allowed  {text}" in result.output


@pytest.mark.parametrize("text", MARKUP)
def test_search_prints_query_verbatim(text: str, synthetic_index: Path) -> None:
    result = runner.invoke(app, ["search", f"red {text}", "--index", str(synthetic_index), "--k", "2"])
    assert result.exit_code == 0, result.output
    assert f"red {text}" in result.output and "red-" in result.output  # the title, then the results


def test_index_prints_file_names_verbatim(synthetic_bundle: Path, synthetic_index: Path, tmp_path: Path) -> None:
    from synthetic_bundle import register_stub_encoders

    register_stub_encoders()
    photo = (synthetic_index.parent / "gallery" / "red-circle.png").read_bytes()
    # "x[/].png" is the file "].png" in the folder "x["; a path never holds "//", so "http://x" is "http:/x"
    names = [Path(f"x{text}.png").as_posix() for text in MARKUP]
    for name in names:
        (tmp_path / "gallery" / name).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / "gallery" / name).write_bytes(photo)
    (tmp_path / "gallery" / "[red]bad.png").write_bytes(b"not a picture")
    args = ["index", str(tmp_path / "gallery"), "--model", str(synthetic_bundle), "--out", str(tmp_path / "index")]
    result = runner.invoke(app, [*args, "--cache", str(tmp_path / "cache")])
    assert result.exit_code == 0, result.output
    assert all(name in result.output for name in names) and "[red]bad.png" in result.output, result.output


@pytest.fixture()
def counting_embed(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """`embed` arguments for the counting encoders of test_cache (no model weights)."""
    from picsearch.encoders import IMAGE_ENCODERS, TEXT_ENCODERS
    from test_cache import CountingImageEncoder, CountingTextEncoder

    monkeypatch.setitem(IMAGE_ENCODERS, "counting", lambda source=None: CountingImageEncoder())
    monkeypatch.setitem(TEXT_ENCODERS, "counting", lambda source=None: CountingTextEncoder())
    return ["embed", "--cache", str(tmp_path / "cache"), "--image-encoder", "counting", "--text-encoder", "counting"]


def test_data_cell_and_line_number_print_verbatim(tmp_path: Path, counting_embed: list[str]) -> None:
    root = write_tiny_dataset(tmp_path / "data", extra=110)
    replace_line(root / "train_dataset.csv", 100, "[/],[bold]x,:smile:")
    for command in (["validate"], counting_embed):
        result = runner.invoke(app, [*command, "--data", str(root)])
        assert result.exception is None or isinstance(result.exception, SystemExit), result.exception
        assert "train_dataset.csv:100:" in result.output and "[/]" in result.output, result.output


# --- embed says what validate reports -----------------------------------------------------------------
def test_embed_warns_about_each_problem_validate_finds(tmp_path: Path, counting_embed: list[str]) -> None:
    root = write_tiny_dataset(tmp_path / "data")
    expert = root / "ExpertAnnotations.tsv"
    replace_line(expert, 1, "a.jpg\ta.jpg#0\t7\t4\t1")  # a score outside 1..4
    replace_line(expert, 3, Path(expert).read_text().splitlines()[1])  # a duplicate pair
    (root / "train_images" / "b.jpg").unlink()  # an image the tables refer to
    expected = {problem.file + ":" + str(problem.line or "") for problem in validate_dataset(root).problems}
    result = runner.invoke(app, [*counting_embed, "--data", str(root)])
    assert result.exit_code == 0, result.output
    warnings = [line for line in result.output.splitlines() if line.startswith("warning: ")]
    assert len(warnings) == len(validate_dataset(root).problems) + 1 >= 4
    assert all(any(where in line for line in warnings) for where in expected)
    assert "ExpertAnnotations.tsv:1: " in result.output and "b.jpg" in result.output


def test_embed_help_says_what_it_does_with_problems() -> None:
    assert "Warns about each problem" in runner.invoke(app, ["embed", "--help"]).output


# --- Broken model files: (name, file, how to break it, words the one-line error must hold) ----------
def _truncate(path: Path) -> None:
    path.write_bytes(path.read_bytes()[: path.stat().st_size // 2])


def _garbage(path: Path) -> None:
    path.write_text("this is not a model\n" * 10)


def _not_utf8(path: Path) -> None:
    path.write_bytes(b"\xff\xfe\x00garbage" * 10)


def _bad_json(path: Path) -> None:
    path.write_text('{"format": 3, ')


def _drop_hashes(folder: Path) -> None:
    manifest = json.loads((folder / "model.json").read_text())
    manifest.pop("sha256")
    (folder / "model.json").write_text(json.dumps(manifest))


BROKEN: list[tuple[str, str, Callable[[Path], None], str]] = [
    ("truncated safetensors", "joint.safetensors", _truncate, "changed since training"),
    ("garbage LightGBM text", "scorer.0.lgb.txt", _garbage, "changed since training"),
    ("non-UTF-8 LightGBM text", "scorer.0.lgb.txt", _not_utf8, "changed since training"),
    ("invalid manifest", "model.json", _bad_json, "invalid JSON"),
    ("missing file", "child.safetensors", Path.unlink, "missing"),
]
# Bundles saved before hashes were recorded: the parsers' own errors, with the file named.
UNHASHED: list[tuple[str, str, Callable[[Path], None], str]] = [
    ("truncated safetensors", "joint.safetensors", _truncate, "not a readable safetensors file"),
    ("garbage LightGBM text", "scorer.0.lgb.txt", _garbage, "not a readable LightGBM model"),
    ("non-UTF-8 LightGBM text", "scorer.0.lgb.txt", _not_utf8, "not UTF-8"),
]


@pytest.fixture()
def model_dir(bundle: RelevanceBundle, tmp_path: Path) -> Path:  # noqa: F811
    return bundle.save(tmp_path / "model")


@pytest.mark.parametrize(("case", "name", "breaker", "words"), BROKEN, ids=[c[0] for c in BROKEN])
def test_broken_model_file_is_named(model_dir: Path, case: str, name: str, breaker, words: str) -> None:
    breaker(model_dir / name)
    with pytest.raises(ArtifactError) as caught:
        RelevanceBundle.load(model_dir)
    message = str(caught.value)
    assert str(model_dir / name) in message and words in message and "\n" not in message


@pytest.mark.parametrize(("case", "name", "breaker", "words"), UNHASHED, ids=[c[0] for c in UNHASHED])
def test_broken_file_of_an_unhashed_bundle_is_named(model_dir: Path, case: str, name: str, breaker, words: str) -> None:
    _drop_hashes(model_dir)
    assert RelevanceBundle.load(model_dir).selected  # loads without hashes
    breaker(model_dir / name)
    with pytest.raises(ArtifactError) as caught:
        RelevanceBundle.load(model_dir)
    assert str(model_dir / name) in str(caught.value) and words in str(caught.value)


@pytest.mark.parametrize(("case", "name", "breaker", "words"), BROKEN, ids=[c[0] for c in BROKEN])
def test_cli_names_the_broken_model_file_and_exits_2(
    model_dir: Path, tmp_path: Path, case: str, name: str, breaker, words: str
) -> None:
    breaker(model_dir / name)
    gallery = write_gallery(tmp_path / "gallery")
    result = runner.invoke(app, ["index", str(gallery), "--model", str(model_dir), "--out", str(tmp_path / "i")])
    assert result.exit_code == 2, result.output
    lines = result.output.strip().splitlines()
    assert len(lines) == 1 and name in lines[0] and words in lines[0], result.output


def test_invalid_metrics_json_is_named(model_dir: Path) -> None:
    (model_dir / "metrics.json").write_text("{not json")
    with pytest.raises(ValueError, match="metrics.json: line 1: invalid JSON"):
        validated_candidates(model_dir)


def test_copied_bundle_loads_and_hashes_are_recorded(model_dir: Path, tmp_path: Path) -> None:
    manifest = json.loads((model_dir / "model.json").read_text())
    assert {"joint.safetensors", "scorer.0.lgb.txt", "child.safetensors"} <= set(manifest["sha256"])
    copy = shutil.copytree(model_dir, tmp_path / "copy")
    assert RelevanceBundle.load(copy).selected == "matching_head"


# --- HEAD wherever GET works ------------------------------------------------------------------------
GET_ROUTES = ["/", "/?q=red+ball", "/api/search?q=blue+sea", "/images/red-ball.jpg", "/thumbs/red-ball.jpg",
              "/healthz", "/static/app.js", "/images/unknown.jpg"]


@pytest.mark.parametrize("path", GET_ROUTES)
def test_head_answers_like_get_without_a_body(path: str, tmp_path: Path) -> None:
    client = TestClient(create_app(WordSearcher(write_gallery(tmp_path / "gallery")), tmp_path / "thumbs"))
    get, head = client.get(path), client.head(path)
    assert head.status_code == get.status_code != 405
    assert head.content == b""
    for header in ("content-type", "content-length", "etag"):
        assert head.headers.get(header) == get.headers.get(header)
