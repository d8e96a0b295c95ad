"""Show search results: a PNG grid (one row per query) and an HTML page (Jinja2)."""

from __future__ import annotations

from dataclasses import dataclass
from io import BytesIO
from pathlib import Path
from typing import Sequence

from jinja2 import Environment, PackageLoader, select_autoescape
from PIL import Image, ImageDraw, ImageFont, ImageOps

from picsearch.data.images import read_image
from picsearch.search.searcher import WEAK_NOTE, SearchResult
from picsearch.storage import write_bytes

THUMB = 180
PAD = 12
TITLE_FONT = 17
LABEL_FONT = 15
BACKGROUND = (255, 255, 255)
EXPECTED = (30, 150, 60)
MUTED = (110, 110, 110)
BLOCKED_FILL = (245, 236, 210)
NOTICE = 64  # height of the disclaimer / empty-result band


@dataclass(frozen=True)
class Shown:
    """One query as displayed: its result and, for labelled queries, the file name of the correct image."""

    result: SearchResult
    expected: str | None = None

    def is_expected(self, path: Path) -> bool:
        return self.expected is not None and path.name == self.expected


def thumbnails(shown: Sequence[Shown], folder: Path, size: int = 2 * THUMB) -> dict[str, Path]:
    """Write one JPEG thumbnail per distinct hit into ``folder``; id -> thumbnail path."""
    folder.mkdir(parents=True, exist_ok=True)
    written: dict[str, Path] = {}
    for item in shown:
        for hit in item.result.hits:
            if hit.id not in written:
                image = read_image(hit.path)
                image.thumbnail((size, size))
                path = folder / f"{hit.id}.jpg"
                write_bytes(path, _encode(image, "JPEG", quality=85))
                written[hit.id] = path
    return written


def _encode(image: Image.Image, fmt: str, **options) -> bytes:
    buffer = BytesIO()
    image.save(buffer, format=fmt, **options)
    return buffer.getvalue()


def _font(size: int) -> ImageFont.FreeTypeFont:
    return ImageFont.load_default(size=size)


def _wrap(text: str, font: ImageFont.FreeTypeFont, width: int, max_lines: int = 2) -> list[str]:
    lines: list[str] = []
    for word in text.split():
        if lines and font.getlength(f"{lines[-1]} {word}") <= width:
            lines[-1] = f"{lines[-1]} {word}"
        else:
            lines.append(word)
    if len(lines) > max_lines:
        lines = lines[: max_lines - 1] + [" ".join(lines[max_lines - 1 :])[: int(width / font.size * 1.8)] + "…"]
    return lines


def render_grid(shown: Sequence[Shown], thumbs: dict[str, Path], path: Path, k: int) -> None:
    """One row per query: the query as title, then its hits with score labels (green frame: the
    labelled correct image), or the disclaimer for a blocked query."""
    title_font, label_font = _font(TITLE_FONT), _font(LABEL_FONT)
    width = PAD + k * (THUMB + PAD)
    titles = [_wrap(_title(item.result), title_font, width - 2 * PAD) for item in shown]
    heights = [
        len(title) * (TITLE_FONT + 5) + PAD + (THUMB + LABEL_FONT + 3 * PAD if item.result.hits else NOTICE + 2 * PAD)
        for item, title in zip(shown, titles)
    ]
    canvas = Image.new("RGB", (width, PAD + sum(heights)), BACKGROUND)
    draw = ImageDraw.Draw(canvas)
    top = PAD
    for item, title, height in zip(shown, titles, heights):
        for line_no, line in enumerate(title):
            draw.text((PAD, top + line_no * (TITLE_FONT + 5)), line, fill=(0, 0, 0), font=title_font)
        row_top = top + len(title) * (TITLE_FONT + 5) + PAD
        if not item.result.hits:
            notice = item.result.disclaimer if item.result.blocked else "No image reaches the minimum score."
            _draw_notice(draw, (PAD, row_top, width - PAD, row_top + NOTICE), notice or "", title_font)
        for col, hit in enumerate(item.result.hits[:k]):
            _draw_hit(canvas, draw, (PAD + col * (THUMB + PAD), row_top), thumbs[hit.id], hit.score,
                      item.is_expected(hit.path), label_font)
        top += height
        draw.line((0, top - PAD // 2, width, top - PAD // 2), fill=(220, 220, 220))
    write_bytes(path, _encode(canvas, "PNG", optimize=True))


def _title(result: SearchResult) -> str:
    """The query in quotes, and :data:`WEAK_NOTE` when even its best hit matches poorly."""
    return f"“{result.query}” · {WEAK_NOTE}" if result.weak else f"“{result.query}”"


def _draw_hit(canvas: Image.Image, draw: ImageDraw.ImageDraw, at: tuple[int, int], thumb: Path, score: float,
              expected: bool, font: ImageFont.FreeTypeFont) -> None:
    left, top = at
    canvas.paste(ImageOps.pad(Image.open(thumb).convert("RGB"), (THUMB, THUMB), color=(235, 235, 235)), (left, top))
    label, colour = f"{score:.2f}", MUTED
    if expected:
        draw.rectangle((left - 4, top - 4, left + THUMB + 3, top + THUMB + 3), outline=EXPECTED, width=4)
        label, colour = f"{score:.2f}  labelled match", EXPECTED
    draw.text((left, top + THUMB + 6), label, fill=colour, font=font)


def _draw_notice(draw: ImageDraw.ImageDraw, box: tuple[int, int, int, int], text: str, font) -> None:
    draw.rectangle(box, fill=BLOCKED_FILL)
    lines = _wrap(text, font, box[2] - box[0] - 2 * PAD, max_lines=3)
    top = (box[1] + box[3]) // 2 - len(lines) * (font.size + 4) // 2
    for line_no, line in enumerate(lines):
        draw.text((box[0] + PAD, top + line_no * (font.size + 4)), line, fill=(90, 60, 0), font=font)


def render_html(shown: Sequence[Shown], thumbs: dict[str, Path], path: Path, title: str, notes: list[str]) -> None:
    """The demo page: each query with its hits (thumbnail, score bar, file name) or the disclaimer."""
    env = Environment(loader=PackageLoader("picsearch.reports", "templates"), autoescape=select_autoescape())
    rows = [
        {
            "query": item.result.query,
            "blocked": item.result.blocked,
            "disclaimer": item.result.disclaimer,
            "weak_note": WEAK_NOTE if item.result.weak else None,
            "hits": [
                {
                    "name": hit.path.name,
                    "score": hit.score,
                    "thumb": thumbs[hit.id].relative_to(path.parent).as_posix(),
                    "expected": item.is_expected(hit.path),
                }
                for hit in item.result.hits
            ],
        }
        for item in shown
    ]
    html = env.get_template("demo.html.j2").render(title=title, rows=rows, notes=notes)
    write_bytes(path, html.encode("utf-8"))
