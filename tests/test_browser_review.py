"""The review page in headless Chromium: sign in, move with the arrow keys, C clears, K keeps."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from playwright.sync_api import Browser, expect

from picsearch.index import image_id
from picsearch.index.desk import ReviewDesk
from picsearch.index.review import LOG_NAME
from picsearch.interfaces.web import create_app
from picsearch.interfaces.web.review import enable_review
from review_gallery import build_review_index
from test_browser import browser, live_server, shots  # noqa: F401 (fixtures)
from web_gallery import WordSearcher, write_gallery

pytestmark = pytest.mark.browser

TOKEN = "browser-review-token-0123456789"
ALL_THUMBS_LOADED = (
    "() => [...document.querySelectorAll('.review-card img')].every(i => i.complete && i.naturalWidth > 0)"
)


def test_review_from_the_keyboard(browser: Browser, tmp_path: Path, shots: Path) -> None:  # noqa: F811
    index_dir = build_review_index(tmp_path)
    app = create_app(WordSearcher(write_gallery(tmp_path / "words")), tmp_path / "thumbs")
    enable_review(app, ReviewDesk.open(index_dir), TOKEN)
    with live_server(app) as url:
        page = browser.new_page()
        page.goto(f"{url}/review")
        page.locator("#token").fill("wrong-token-wrong-token")
        page.locator("#token").press("Enter")
        expect(page.locator(".login-error")).to_have_text("Wrong token.")
        page.locator("#token").fill(TOKEN)
        page.locator("#name").fill("ann")
        page.locator("#name").press("Enter")
        page.wait_for_url(f"{url}/review")
        cards = page.locator(".review-card")
        expect(cards).to_have_count(4)
        page.wait_for_function(ALL_THUMBS_LOADED)
        first = [image_id(name) for name in ("b.png", "a.png", "c.png", "d.png")]
        assert [cards.nth(i).get_attribute("data-id") for i in range(4)] == first
        expect(cards.nth(0)).to_be_focused()
        page.screenshot(path=str(shots / "review-grid.png"), full_page=True)

        page.keyboard.press("ArrowRight")
        expect(cards.nth(1)).to_be_focused()
        page.keyboard.press("ArrowLeft")
        page.keyboard.press("c")  # b.png: clear
        expect(cards.nth(0).locator("[data-slot=state]")).to_have_text("cleared")
        expect(page.locator("#remaining")).to_have_text("3")
        expect(cards.nth(1)).to_be_focused()  # on to the next one still pending
        page.keyboard.press("k")  # a.png: keep hidden
        expect(cards.nth(1).locator("[data-slot=state]")).to_have_text("kept hidden")
        expect(page.locator("#remaining")).to_have_text("2")
        expect(page.locator("#reviewed")).to_have_text("2")
        expect(cards.nth(2)).to_be_focused()
        page.wait_for_timeout(300)  # let the focus ring's transition finish before the picture
        page.screenshot(path=str(shots / "review-decided.png"), full_page=True)

    records = [json.loads(line) for line in (index_dir / LOG_NAME).read_text().splitlines()]
    assert [(r["id"], r["decision"], r["who"]) for r in records] == [(first[0], "clear", "ann"), (first[1], "flag", "ann")]
