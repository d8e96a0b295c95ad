"""The page's languages: catalogues with the same keys, the choice of language, the page rendered in Russian."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest
from fastapi.testclient import TestClient

from picsearch.interfaces.web import create_app, i18n
from picsearch.interfaces.web.i18n import LANGUAGES, CatalogueError, catalogue, choose_language
from picsearch.policy import DISCLAIMER
from web_gallery import WordSearcher, write_gallery

TEMPLATES = Path(i18n.__file__).parent / "templates"
CYRILLIC = re.compile("[\u0400-\u04ff]")


def test_every_catalogue_has_every_key_and_no_empty_text() -> None:
    english = json.loads((i18n.MESSAGES / "en.json").read_text(encoding="utf-8"))
    for language in LANGUAGES:
        messages = catalogue(language)
        assert set(messages) == set(english), language
        for key, text in messages.items():
            assert key in ("disclaimer_translation", "label_q") or text, (language, key)
            assert isinstance(text, (str, list)) and type(text) is type(english[key]), (language, key)
    assert catalogue("ru")["disclaimer_translation"] and not catalogue("en")["disclaimer_translation"]


def test_every_russian_text_is_translated() -> None:
    same = {key for key, text in catalogue("ru").items() if text == catalogue("en")[key] and text}
    assert same == {"api_link"}  # "API" reads the same in Russian


def test_templates_use_only_catalogue_keys() -> None:
    used = set()
    for template in TEMPLATES.glob("*.html"):
        used |= set(re.findall(r"\bt\.(\w+)", template.read_text(encoding="utf-8")))
    assert used and used <= set(catalogue("en"))


def test_a_catalogue_missing_a_key_is_refused_by_name(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    for language in LANGUAGES:
        (tmp_path / f"{language}.json").write_text((i18n.MESSAGES / f"{language}.json").read_text(encoding="utf-8"))
    broken = json.loads((tmp_path / "ru.json").read_text(encoding="utf-8"))
    del broken["search_button"]
    (tmp_path / "ru.json").write_text(json.dumps(broken), encoding="utf-8")
    monkeypatch.setattr(i18n, "MESSAGES", tmp_path)
    catalogue.cache_clear()
    try:
        with pytest.raises(CatalogueError, match=r"ru\.json: missing keys \['search_button'\]"):
            catalogue("ru")
    finally:
        catalogue.cache_clear()


@pytest.mark.parametrize(
    ("header", "requested", "chosen"),
    [
        ("ru-RU,ru;q=0.9,en-US;q=0.8,en;q=0.7", None, "ru"),
        ("en-US,en;q=0.9,ru;q=0.8", None, "en"),
        ("de-DE,de;q=0.9,ru;q=0.5", None, "ru"),
        ("en;q=0.3, RU;q=0.8", None, "ru"),
        ("ru;q=0, en", None, "en"),
        ("fr, de", None, "en"),
        ("ru;q=abc, en;q=0.5", None, "en"),
        ("", None, "en"),
        (None, None, "en"),
        ("ru", "en", "en"),
        ("en", "ru", "ru"),
        ("ru", "xx", "ru"),
    ],
)
def test_language_from_the_switch_then_accept_language(header, requested, chosen) -> None:
    assert choose_language(header, requested) == chosen


@pytest.fixture()
def client(tmp_path: Path) -> TestClient:
    return TestClient(create_app(WordSearcher(write_gallery(tmp_path / "gallery")), tmp_path / "thumbs"))


def test_page_follows_accept_language(client: TestClient) -> None:
    russian = client.get("/", headers={"Accept-Language": "ru-RU,ru;q=0.9"})
    assert russian.status_code == 200 and '<html lang="ru">' in russian.text
    assert russian.headers["content-language"] == "ru" and "Accept-Language" in russian.headers["vary"]
    assert catalogue("ru")["landing_title"] in russian.text and catalogue("en")["landing_title"] not in russian.text
    english = client.get("/", headers={"Accept-Language": "en-GB"})
    assert '<html lang="en">' in english.text and catalogue("en")["landing_title"] in english.text


def test_switch_links_keep_the_search_and_the_form_keeps_the_choice(client: TestClient) -> None:
    page = client.get("/?q=blue+sea&k=3&lang=ru", headers={"Accept-Language": "en"}).text
    assert '<html lang="ru">' in page and 'href="/?q=blue+sea&amp;k=3&amp;lang=en"' in page
    assert '<input type="hidden" name="lang" value="ru">' in page
    plain = client.get("/?q=blue+sea", headers={"Accept-Language": "ru"}).text
    assert 'name="lang"' not in plain  # without the switch, searches keep following the browser


def test_russian_results_page_has_no_english_words_of_ours(client: TestClient) -> None:
    page = client.get("/?q=blue+sea&lang=ru").text
    visible = re.sub(r"<[^>]+>", " ", re.sub(r"<(script|style|template)[^>]*>.*?</\1>", "", page, flags=re.S))
    words = set(re.findall(r"[A-Za-z]{3,}", visible)) - {"picsearch", "API", "English", "Flickr", "blue", "sea"}
    assert words == set(), words
    assert CYRILLIC.search(visible)


def test_blocked_query_in_russian_keeps_the_exact_english_disclaimer(client: TestClient) -> None:
    page = client.get("/", params={"q": "дети на пляже", "lang": "ru"}).text
    assert f'<h1 class="notice-title disclaimer" lang="en" data-slot="disclaimer">{DISCLAIMER}</h1>' in page
    translation = catalogue("ru")["disclaimer_translation"]
    assert page.index(DISCLAIMER) < page.index(translation)
    api = client.get("/api/search", params={"q": "дети на пляже"}, headers={"Accept-Language": "ru"}).json()
    assert api["disclaimer"] == DISCLAIMER  # the API stays English


def test_validation_error_names_the_field_in_russian(client: TestClient) -> None:
    page = client.get("/?q=sea&k=999&lang=ru")
    assert page.status_code == 422 and catalogue("ru")["label_k"] in page.text
