"""A tiny dataset in the course layout, written by tests into tmp_path (clean unless a test breaks it)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
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
SUBJECTS = ["dog", "man", "cat", "boy", "horse", "woman", "bird", "girl"]
"""Subjects of generated captions: every fourth is a child, so a quarter of the generated images are."""
COLORS = [(200, 30, 30), (30, 200, 30), (30, 30, 200), (200, 200, 30), (90, 90, 90), (250, 250, 250)]


def generated_captions(extra: int) -> dict[str, str]:
    """One caption each for ``extra`` generated train images ``g000.jpg``, ``g001.jpg``, ..."""
    return {
        f"g{k:03d}.jpg#0": f"A {SUBJECTS[k % len(SUBJECTS)]} near a {'red blue green'.split()[k % 3]} wall ."
        for k in range(extra)
    }


def expert_rows(extra: int = 0) -> list[tuple[str, str, int, int, int]]:
    """Every fixed train image with every fixed caption; each generated image with its own caption and the
    next two generated captions. Matching pairs score high, others low, with some spread."""
    rows = []
    for i, image in enumerate(TRAIN_IMAGES):
        for j, query_id in enumerate(CAPTIONS):
            rows.append((image, query_id, *_scores(image == query_id.split("#")[0], i, j)))
    generated = list(generated_captions(extra))
    for i, own in enumerate(generated):
        for j in range(3):
            query_id = generated[(i + j) % extra]
            rows.append((own.split("#")[0], query_id, *_scores(j == 0, i, j)))
    return rows


def _scores(match: bool, i: int, j: int) -> tuple[int, int, int]:
    return (4, 4, 3) if match else (1 + (i + j) % 2, 1 + (i * j) % 3, 1 + (i + 2 * j) % 4)


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


def write_tiny_dataset(root: Path, extra: int = 0) -> Path:
    """Write the tiny dataset under ``root`` and return ``root``.

    ``extra`` adds that many generated train images (random pixels) with one caption each, enough for
    grouped CV and the child detector's folds when it is a few dozen."""
    for folder, names in (("train_images", TRAIN_IMAGES), ("test_images", TEST_IMAGES)):
        (root / folder).mkdir(parents=True, exist_ok=True)
        for k, name in enumerate(names):
            Image.new("RGB", (16, 12), COLORS[k % len(COLORS)]).save(root / folder / name, "JPEG")
    rng = np.random.default_rng(0)
    for query_id in generated_captions(extra):
        pixels = rng.integers(0, 256, (12, 16, 3), dtype=np.uint8)
        Image.fromarray(pixels).save(root / "train_images" / query_id.split("#")[0], "JPEG")
    train = ["image,query_id,query_text"]
    texts = {query_id: _csv_quote(text) for query_id, text in (CAPTIONS | generated_captions(extra)).items()}
    train += [f"{image},{query_id},{texts[query_id]}" for image, query_id, *_ in expert_rows(extra)]
    _write(root / "train_dataset.csv", train)
    _write(root / "ExpertAnnotations.tsv", ["\t".join(map(str, row)) for row in expert_rows(extra)])
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
