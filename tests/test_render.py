"""The demo's pages: the HTML and the PNG grid say when an answer is weak (fast, generated pictures)."""

from __future__ import annotations

from pathlib import Path

from PIL import Image

from picsearch.policy import DISCLAIMER
from picsearch.reports.render import Shown, render_grid, render_html, thumbnails
from picsearch.search import WEAK_NOTE, Hit, SearchResult


def test_a_weak_answer_is_marked_and_a_good_or_blocked_one_is_not(tmp_path: Path) -> None:
    paths = []
    for name, colour in (("sea.jpg", (40, 80, 200)), ("sun.jpg", (230, 200, 40))):
        Image.new("RGB", (90, 60), colour).save(tmp_path / name)
        paths.append(tmp_path / name)
    shown = [
        Shown(SearchResult("stars at night", False, hits=[Hit("sea", paths[0], 0.2), Hit("sun", paths[1], 0.1)])),
        Shown(SearchResult("blue sea", False, hits=[Hit("sea", paths[0], 0.9)]), expected="sea.jpg"),
        Shown(SearchResult("two girls", True, DISCLAIMER)),
    ]
    out = tmp_path / "demo"
    thumbs = thumbnails(shown, out / "thumbs")
    render_html(shown, thumbs, out / "index.html", "demo", [])
    sections = (out / "index.html").read_text().split("<section>")[1:]
    assert [WEAK_NOTE.capitalize() in section for section in sections] == [True, False, False]
    strong = Shown(SearchResult("stars at night", False, hits=[Hit("sea", paths[0], 0.5), Hit("sun", paths[1], 0.1)]))
    render_grid(shown[:1], thumbs, out / "weak.png", k=2)
    render_grid([strong], thumbs, out / "strong.png", k=2)
    # the same row but for the note, which takes the title past one line of a 2-picture grid
    assert Image.open(out / "weak.png").height > Image.open(out / "strong.png").height
