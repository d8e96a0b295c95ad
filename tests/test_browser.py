"""The search page in headless Chromium (Debian's /usr/bin/chromium, never `playwright install`; see conftest.py).

The app runs under uvicorn on 127.0.0.1 in a thread. Screenshots go to a temporary folder, or
to $PICSEARCH_SCREENSHOTS when it is set.
"""

from __future__ import annotations

import os
import socket
import threading
import time
from contextlib import contextmanager
from pathlib import Path
from typing import Iterator

import pytest
import uvicorn
from playwright.sync_api import Browser, Page, expect, sync_playwright

from picsearch.interfaces.web import create_app
from picsearch.policy import DISCLAIMER
from web_gallery import WordSearcher, write_gallery

pytestmark = pytest.mark.browser

CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
]
ALL_IMAGES_LOADED = (
    "() => { const images = [...document.querySelectorAll('#results .card-image')];"
    " return images.length > 0 && images.every(i => i.complete && i.naturalWidth > 0); }"
)


@contextmanager
def live_app(searcher, thumbs: Path) -> Iterator[str]:
    """Serve ``create_app(searcher)`` on a free loopback port; yield its base URL."""
    with live_server(create_app(searcher, thumbs)) as url:
        yield url


@contextmanager
def live_server(app) -> Iterator[str]:
    """Serve ``app`` on a free loopback port; yield its base URL."""
    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    server = uvicorn.Server(uvicorn.Config(app, log_level="warning"))
    thread = threading.Thread(target=server.run, kwargs={"sockets": [sock]}, daemon=True)
    thread.start()
    deadline = time.monotonic() + 20
    while not server.started:
        assert thread.is_alive() and time.monotonic() < deadline, "uvicorn did not start"
        time.sleep(0.05)
    try:
        yield f"http://127.0.0.1:{sock.getsockname()[1]}"
    finally:
        server.should_exit = True
        thread.join(timeout=20)
        sock.close()


@pytest.fixture(scope="module")
def browser(chromium: Path) -> Iterator[Browser]:
    with sync_playwright() as playwright:
        launched = playwright.chromium.launch(executable_path=str(chromium), headless=True, args=CHROMIUM_ARGS)
        yield launched
        launched.close()


@pytest.fixture()
def shots(tmp_path: Path) -> Path:
    folder = Path(os.environ.get("PICSEARCH_SCREENSHOTS") or tmp_path / "screenshots")
    folder.mkdir(parents=True, exist_ok=True)
    return folder


@pytest.fixture()
def searcher(tmp_path: Path) -> WordSearcher:
    return WordSearcher(write_gallery(tmp_path / "gallery"))


@pytest.fixture()
def base_url(searcher: WordSearcher, tmp_path: Path) -> Iterator[str]:
    with live_app(searcher, tmp_path / "thumbs") as url:
        yield url


def search(page: Page, query: str) -> None:
    """Type ``query`` in the box and press Enter."""
    page.locator("#q").fill(query)
    page.locator("#q").press("Enter")


def test_live_search_without_reload(browser: Browser, base_url: str, shots: Path) -> None:
    page = browser.new_page()
    page.goto(base_url)
    expect(page.locator("#q")).to_be_focused()
    page.evaluate("window.sameDocument = true")
    search(page, "blue sea")
    page.wait_for_function(ALL_IMAGES_LOADED)
    cards = page.locator("#results .card")
    expect(cards).to_have_count(4)
    expect(cards.first.locator(".score")).to_have_text("100%")
    expect(cards.first.locator("a")).to_have_attribute("href", "/images/blue-sea.jpg")
    expect(cards.first.locator("img")).to_have_attribute("alt", "Result 1: 100% match")
    expect(page.locator("#status")).to_have_text("4 photos for blue sea, best match first")  # for screen readers
    assert page.evaluate("window.sameDocument") is True  # no full reload
    assert page.url == f"{base_url}/?q=blue+sea&k=10&min_score=0"
    page.screenshot(path=str(shots / "word-gallery-results.png"), full_page=True)

    expect(page.locator("#results .weak-note")).to_have_count(0)
    search(page, "sea at night with stars")  # the best photo matches one word in five
    expect(page.locator("#results .weak-note")).to_have_text(
        "No good match here: the best photo scores 20%. Under 33%, a description fits a photo in minor aspects at most."
    )
    expect(page.locator("#status")).to_contain_text("best match first No good match here")
    page.screenshot(path=str(shots / "word-gallery-weak.png"), full_page=True)
    search(page, "blue sea")
    expect(page.locator("#results .weak-note")).to_have_count(0)
    page.wait_for_function(ALL_IMAGES_LOADED)

    cards.first.locator("a").click()  # a result opens the full image
    page.wait_for_url(f"{base_url}/images/blue-sea.jpg")
    assert page.evaluate("[document.images[0].naturalWidth, document.images[0].naturalHeight]") == [900, 600]


def test_api_docs_render_offline(browser: Browser, base_url: str, shots: Path) -> None:
    page = browser.new_page()
    outside = []
    page.route(
        lambda url: not url.startswith(base_url),
        lambda route: (outside.append(route.request.url), route.abort()),
    )
    page.goto(f"{base_url}/docs")
    expect(page.locator(".opblock-summary-path", has_text="/api/search")).to_be_visible()
    assert outside == []  # Swagger UI came from this server, nothing from a CDN
    page.screenshot(path=str(shots / "docs.png"))


def test_controls_rerun_the_search(browser: Browser, base_url: str, searcher: WordSearcher) -> None:
    page = browser.new_page()
    page.goto(f"{base_url}/?q=blue+sea")
    expect(page.locator("#results .card")).to_have_count(4)
    page.locator("#min_score").fill("0.5")
    expect(page.locator("#min_score_out")).to_have_text("50%")
    expect(page.locator("#results .card")).to_have_count(2)
    page.locator("#k").fill("1")
    page.locator("#k").press("Enter")
    expect(page.locator("#results .card")).to_have_count(1)
    assert searcher.calls[-1] == ("blue sea", 1, 0.5)
    assert page.url.endswith("/?q=blue+sea&k=1&min_score=0.5")
    page.locator("#min_score").fill("1")
    expect(page.locator("#results .card")).to_have_count(1)
    search(page, "purple cat")
    expect(page.locator("#results .notice-empty")).to_contain_text("by at least 100%")


def test_disclaimer_for_a_query_about_children(browser: Browser, base_url: str, shots: Path) -> None:
    page = browser.new_page()
    page.goto(f"{base_url}/?q=blue+sea")
    expect(page.locator("#results .card")).to_have_count(4)
    search(page, "two little girls by the blue sea")
    expect(page.locator("#results .disclaimer")).to_have_text(DISCLAIMER)
    expect(page.locator("#results img")).to_have_count(0)
    expect(page.locator("#status")).to_contain_text(DISCLAIMER)
    page.screenshot(path=str(shots / "word-gallery-blocked.png"))


def test_query_is_shown_as_text_never_as_html(browser: Browser, base_url: str) -> None:
    attack = '<img src=x onerror="window.pwned=1">sea'
    page = browser.new_page()
    page.goto(base_url)
    search(page, attack)
    expect(page.locator("#results .query-echo")).to_have_text(attack)
    page.goto(f"{base_url}/?q=" + attack.replace('"', "%22"))
    expect(page.locator("#results .query-echo")).to_have_text(attack)
    expect(page.locator("#q")).to_have_value(attack)
    assert page.evaluate("window.pwned") is None


def test_errors_are_shown(browser: Browser, base_url: str) -> None:
    page = browser.new_page()
    page.goto(base_url)
    search(page, "   ")
    expect(page.locator("#results .notice-error")).to_contain_text("q: The query is empty")


def test_keyboard(browser: Browser, base_url: str) -> None:
    page = browser.new_page()
    page.goto(f"{base_url}/?q=green+grass")
    expect(page.locator("#q")).not_to_be_focused()
    page.keyboard.press("/")
    expect(page.locator("#q")).to_be_focused()
    page.keyboard.press("Tab")  # the search button
    page.keyboard.press("Tab")  # k
    page.keyboard.press("Tab")  # min_score
    page.keyboard.press("Tab")  # the first result
    focused = page.locator(":focus")
    expect(focused).to_have_attribute("href", "/images/green-field.png")
    outline = focused.evaluate("e => getComputedStyle(e).outlineStyle + ' ' + getComputedStyle(e).outlineWidth")
    assert outline == "solid 3px"
    page.keyboard.press("Enter")
    page.wait_for_url(f"{base_url}/images/green-field.png")


def test_form_works_without_javascript(browser: Browser, base_url: str, shots: Path) -> None:
    context = browser.new_context(java_script_enabled=False)
    page = context.new_page()
    page.goto(base_url)
    page.locator("#q").fill("red ball")
    with page.expect_navigation():
        page.locator("#q").press("Enter")
    assert page.url == f"{base_url}/?q=red+ball&k=10&min_score=0"
    page.wait_for_function(ALL_IMAGES_LOADED)  # evaluate still runs with page JavaScript off
    expect(page.locator("#results .card").first.locator(".score")).to_have_text("100%")
    page.screenshot(path=str(shots / "word-gallery-no-js.png"), full_page=True)

    page.locator("#q").fill("a boy with a red ball")
    with page.expect_navigation():
        page.locator(".search-button").click()
    expect(page.locator("#results .disclaimer")).to_have_text(DISCLAIMER)
    expect(page.locator("#results img")).to_have_count(0)
    context.close()


# --- The real test gallery with the trained models ---


@pytest.fixture(scope="module")
def real_searcher(real_data: Path, real_artifacts: Path, tmp_path_factory: pytest.TempPathFactory):
    from picsearch.index import build_index
    from picsearch.search import Searcher

    index = tmp_path_factory.mktemp("browser") / "index"
    build_index(real_data / "test_images", real_artifacts, index, progress=False)
    return Searcher.open(index)


@pytest.mark.data
@pytest.mark.slow
def test_real_gallery(browser: Browser, real_searcher, shots: Path, tmp_path: Path) -> None:
    with live_app(real_searcher, tmp_path / "thumbs") as base:
        page = browser.new_page(viewport={"width": 1280, "height": 900})
        page.goto(base)
        expect(page.locator(".lede")).to_contain_text(f"Search {len(real_searcher)} photos")
        page.screenshot(path=str(shots / "landing.png"))

        search(page, "a dog runs through the water")
        page.wait_for_function(ALL_IMAGES_LOADED)
        expect(page.locator("#results .card")).to_have_count(10)
        scores = [int(text.rstrip("%")) for text in page.locator("#results .score").all_text_contents()]
        assert scores == sorted(scores, reverse=True) and all(0 <= score <= 100 for score in scores)
        expected = real_searcher.search("a dog runs through the water", k=10).hits
        links = page.locator("#results .card-link").evaluate_all("links => links.map(a => a.getAttribute('href'))")
        assert links == [f"/images/{hit.id}" for hit in expected]
        page.screenshot(path=str(shots / "search-results.png"), full_page=True)

        search(page, "a little girl in a pink dress")
        expect(page.locator("#results .disclaimer")).to_have_text(DISCLAIMER)
        expect(page.locator("#results img")).to_have_count(0)
        page.screenshot(path=str(shots / "search-blocked.png"))

        no_js = browser.new_context(java_script_enabled=False, viewport={"width": 390, "height": 844})
        phone = no_js.new_page()
        phone.goto(f"{base}/?q=a+skier+in+the+snow&k=6")
        phone.wait_for_function(ALL_IMAGES_LOADED)
        expect(phone.locator("#results .card")).to_have_count(6)
        phone.screenshot(path=str(shots / "phone-no-js.png"), full_page=True)
        no_js.close()


def test_page_in_russian_from_the_browser_language(browser: Browser, base_url: str, shots: Path) -> None:
    page = browser.new_page(locale="ru-RU", extra_http_headers={"Accept-Language": "ru-RU,ru;q=0.9"})
    page.goto(base_url)
    expect(page.locator("html")).to_have_attribute("lang", "ru")
    expect(page.locator(".landing h1")).to_have_text("Ищите фотографии по описанию")
    expect(page.locator(".search-button")).to_have_text("Найти")
    search(page, "blue sea")  # live search draws its answer with the Russian messages
    page.wait_for_function(ALL_IMAGES_LOADED)
    expect(page.locator("#status")).to_have_text("4 фото по запросу blue sea, сначала лучшие")
    expect(page.locator("#results .card img").first).to_have_attribute("alt", "Результат 1: совпадение 100%")
    page.screenshot(path=str(shots / "word-gallery-results-ru.png"), full_page=True)
    search(page, "sea at night with stars")
    expect(page.locator("#results .weak-note")).to_have_text(
        "Хороших совпадений нет: лучшее фото набирает 20%. Ниже 33% описание совпадает с фото разве что в мелочах."
    )

    search(page, "две девочки у моря")
    expect(page.locator("#results .disclaimer")).to_have_text(DISCLAIMER)
    expect(page.locator("#results .notice-translation")).to_have_text(
        "Это изображение недоступно в вашей стране в соответствии с местным законодательством"
    )
    expect(page.locator("#results img")).to_have_count(0)
    page.screenshot(path=str(shots / "word-gallery-blocked-ru.png"))


def test_language_switch_both_ways(browser: Browser, base_url: str, shots: Path) -> None:
    page = browser.new_page(extra_http_headers={"Accept-Language": "en-US,en;q=0.9"})
    page.goto(f"{base_url}/?q=blue+sea")
    expect(page.locator(".search-button")).to_have_text("Search")
    page.locator(".language-switch a[hreflang=ru]").click()
    page.wait_for_url(f"{base_url}/?q=blue+sea&lang=ru")
    expect(page.locator(".summary")).to_contain_text("по запросу")
    expect(page.locator(".language-switch a[aria-current]")).to_have_text("Русский")
    search(page, "green field")  # the choice sticks for the next search
    expect(page.locator("#status")).to_contain_text("по запросу green field")
    assert page.url.endswith("lang=ru")
    page.screenshot(path=str(shots / "word-gallery-switch-ru.png"))
    page.locator(".language-switch a[hreflang=en]").click()
    expect(page.locator(".summary")).to_contain_text("best match first")
    expect(page.locator("html")).to_have_attribute("lang", "en")
