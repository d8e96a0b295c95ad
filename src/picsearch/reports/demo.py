"""The demo: from nothing but the data folder to a page of search results.

Trains the models (or reuses matching artifacts), indexes ``test_images/``, answers a seeded
sample of the test queries (or the user's own) and writes ``index.html`` and ``grid.png``.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Sequence

import pandas as pd

from picsearch.config import default_cache_dir
from picsearch.data import Dataset, load_dataset
from picsearch.encoders import DEFAULT_IMAGE_ENCODER, DEFAULT_TEXT_ENCODER, get_image_encoder, get_text_encoder
from picsearch.index import UpdateReport, build_index
from picsearch.models.artifacts import MANIFEST, METRICS, ArtifactError, RelevanceBundle
from picsearch.models.train import fit_from_dataset, save_training
from picsearch.reports.render import Shown, render_grid, render_html, thumbnails
from picsearch.search.searcher import SearchResult, Searcher
from picsearch.storage import file_sha256, load_json


@dataclass(frozen=True)
class Demo:
    """What the demo produced."""

    shown: list[Shown]
    update: UpdateReport
    html: Path
    grid: Path

    @property
    def results(self) -> list[SearchResult]:
        return [item.result for item in self.shown]


def trained_on(
    dataset: Dataset, artifacts: Path, image_encoder: str = DEFAULT_IMAGE_ENCODER,
    text_encoder: str = DEFAULT_TEXT_ENCODER,
) -> bool:
    """Whether ``artifacts`` holds a complete model trained on exactly this data (model card hashes) with
    these encoders, down to their ids (models of an earlier default encoder, or of an earlier version of the same
    one, are retrained, not reused)."""
    card = artifacts / "model_card.json"
    if not all((artifacts / name).is_file() for name in (MANIFEST, METRICS, card.name)):
        return False
    try:
        recorded = load_json(card).get("data", {})
    except (ValueError, AttributeError):  # an unreadable card: the models are retrained, like a broken bundle
        return False
    if not recorded or any(file_sha256(dataset.root / name) != digest for name, digest in recorded.items()):
        return False
    try:
        bundle = RelevanceBundle.load(artifacts)  # written by an older, incompatible version?
    except (ArtifactError, KeyError):
        return False
    if (bundle.image_encoder, bundle.text_encoder) != (image_encoder, text_encoder):
        return False
    ids = (get_image_encoder(image_encoder).id, get_text_encoder(text_encoder).id)  # cheap: weights load lazily
    return (bundle.image_encoder_id, bundle.text_encoder_id) == ids


def ensure_trained(dataset: Dataset, artifacts: Path, log: Callable[[str], None] = print) -> bool:
    """Train and save the models into ``artifacts`` unless matching ones are there; True if it trained."""
    if trained_on(dataset, artifacts):
        log(f"reusing the models in {artifacts} (trained on this data)")
        return False
    log(f"training the relevance models into {artifacts} (embeddings cached in {default_cache_dir(artifacts)}) ...")
    result = fit_from_dataset(dataset, DEFAULT_IMAGE_ENCODER, DEFAULT_TEXT_ENCODER, default_cache_dir(artifacts))
    save_training(artifacts, dataset, result)
    log(f"selected model: {result.metrics['selected']}")
    return True


def pick_queries(test_queries: pd.DataFrame, n: int, seed: int) -> list[tuple[str, str]]:
    """``n`` random (query text, correct image) pairs, reproducible by ``seed``."""
    if n < 1:
        raise ValueError(f"n: must be at least 1, got {n}")
    sample = test_queries.sample(n=min(n, len(test_queries)), random_state=seed)
    return list(zip(sample["query_text"], sample["image"]))


def run_demo(
    data: Path,
    artifacts: Path,
    out: Path,
    queries: Sequence[str] | None = None,
    n: int = 10,
    seed: int = 0,
    k: int = 5,
    log: Callable[[str], None] = print,
) -> Demo:
    """Train or reuse, index the test images into ``out/index``, search, and render into ``out``."""
    dataset = load_dataset(data)
    ensure_trained(dataset, Path(artifacts), log)
    log(f"indexing {dataset.test_images_dir} ...")
    update = build_index(dataset.test_images_dir, artifacts, out / "index", progress=False)
    log(update.summary())
    searcher = Searcher.open(out / "index")
    picked = [(query, None) for query in queries] if queries else pick_queries(dataset.test_queries, n, seed)
    results = searcher.search_many([query for query, _ in picked], k)
    shown = [Shown(result, expected) for result, (_, expected) in zip(results, picked)]
    thumbs = thumbnails(shown, out / "thumbs")
    grid, html = out / "grid.png", out / "index.html"
    render_grid(shown, thumbs, grid, k)
    notes = [
        f"{len(searcher)} of {len(searcher.index)} test images searchable "
        f"({int(searcher.index.child.sum())} hidden by the child detector); scores in [0, 1] from the relevance model.",
        "A green frame marks the image the query's caption was written for (test_queries.csv).",
    ]
    render_html(shown, thumbs, html, "picsearch demo", notes)
    return Demo(shown, update, html, grid)
