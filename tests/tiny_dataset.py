"""A tiny dataset in the course layout, written by tests into tmp_path (clean unless a test breaks it)."""

from __future__ import annotations

from pathlib import Path

from PIL import Image

TRAIN_IMAGES = ["a.jpg", "b.jpg", "c.jpg", "d.jpg"]
TEST_IMAGES = ["t1.jpg", "t2.jpg"]
CAPTIONS = {
    "a.jpg#0": "A dog runs on the grass .",
    "b.jpg#0": "A little girl in a pink dress , smiling .",
    "c.jpg#0": "Two men climb a rock wall .",
    "d.jpg#1": 'A "red" car parked on a street .',
}
TEST_CAPTIONS = {
    "t1.jpg#0": "A cat sleeps on a sofa .",
    "t1.jpg#1": "A grey cat , asleep .",
    "t2.jpg#0": "Boats in a harbour at sunset .",
}
COLORS = [(200, 30, 30), (30, 200, 30), (30, 30, 200), (200, 200, 30), (90, 90, 90), (250, 250, 250)]


def expert_rows() -> list[tuple[str, str, int, int, int]]:
    """Every train image with every caption; matching pairs score high, others low, with some spread."""
    rows = []
    for i, image in enumerate(TRAIN_IMAGES):
        for j, query_id in enumerate(CAPTIONS):
            match = image == query_id.split("#")[0]
            scores = (4, 4, 3) if match else (1 + (i + j) % 2, 1 + (i * j) % 3, 1 + (i + 2 * j) % 4)
            rows.append((image, query_id, *scores))
    return rows


def crowd_rows() -> list[tuple[str, str, str, int, int]]:
    """The crowd rated the first ten expert pairs plus two pairs the experts did not rate."""
    rows = []
    for n, (image, query_id, *scores) in enumerate(expert_rows()[:10]):
        yes = 3 if sum(scores) >= 10 else (n % 3 if sum(scores) >= 6 else 0)
        rows.append((image, query_id, _frac(yes, 3), yes, 3 - yes))
    rows.append(("a.jpg", "t1.jpg#0", _frac(0, 3), 0, 3))
    rows.append(("b.jpg", "t2.jpg#0", _frac(1, 4), 1, 3))
    return rows


def _frac(yes: int, total: int) -> str:
    return "1" if yes == total else "0" if yes == 0 else f"{yes / total:.15f}"


def write_tiny_dataset(root: Path) -> Path:
    """Write the tiny dataset under ``root`` and return ``root``."""
    for folder, names in (("train_images", TRAIN_IMAGES), ("test_images", TEST_IMAGES)):
        (root / folder).mkdir(parents=True, exist_ok=True)
        for k, name in enumerate(names):
            Image.new("RGB", (16, 12), COLORS[k % len(COLORS)]).save(root / folder / name, "JPEG")
    train = ["image,query_id,query_text"]
    texts = {query_id: _csv_quote(text) for query_id, text in CAPTIONS.items()}
    train += [f"{image},{query_id},{texts[query_id]}" for image, query_id, *_ in expert_rows()]
    _write(root / "train_dataset.csv", train)
    _write(root / "ExpertAnnotations.tsv", ["\t".join(map(str, row)) for row in expert_rows()])
    _write(root / "CrowdAnnotations.tsv", ["\t".join(map(str, row)) for row in crowd_rows()])
    queries = ["|query_id|query_text|image"]
    queries += [f"{n}|{qid}|{text}|{qid.split('#')[0]}" for n, (qid, text) in enumerate(TEST_CAPTIONS.items())]
    _write(root / "test_queries.csv", queries)
    return root


def _csv_quote(text: str) -> str:
    return '"' + text.replace('"', '""') + '"' if ("," in text or '"' in text) else text


def _write(path: Path, lines: list[str]) -> None:
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")


def line_of(path: Path, needle: str) -> int:
    """1-based number of the first line of ``path`` containing ``needle``."""
    for number, line in enumerate(path.read_text(encoding="utf-8").splitlines(), start=1):
        if needle in line:
            return number
    raise AssertionError(f"{needle!r} not in {path}")


def replace_line(path: Path, number: int, new: str) -> None:
    """Replace line ``number`` (1-based) of ``path`` with ``new``."""
    lines = path.read_text(encoding="utf-8").splitlines()
    lines[number - 1] = new
    _write(path, lines)
