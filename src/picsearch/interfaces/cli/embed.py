"""Command: `picsearch embed` fills the embedding cache for every image and text of a dataset."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Annotated, Optional

import typer

from picsearch.config import default_cache_dir
from picsearch.encoders import DEFAULT_IMAGE_ENCODER, DEFAULT_TEXT_ENCODER
from picsearch.features.embed import DEFAULT_BATCH
from picsearch.interfaces.cli.common import DataOption, console, data_dir, say, user_errors
from picsearch.interfaces.cli.data import warn_about_problems


def register(app: typer.Typer, report_app: typer.Typer) -> None:
    """Add this module's commands to the app."""
    app.command("embed")(embed)


def embed(
    data: DataOption = None,
    image_encoder: Annotated[
        str,
        typer.Option(
            help="Image encoder: effnet-lite0+lite2 (default), effnet-lite0+lite2+zoom (better ranking, about "
            "2.3x the time), effnet-lite0, effnet-lite2, clip[:HUB_NAME_OR_FOLDER], resnet18[:...]."
        ),
    ] = DEFAULT_IMAGE_ENCODER,
    text_encoder: Annotated[
        str, typer.Option(help="Text encoder: mpnet (default), minilm, clip[:...], bert[:...].")
    ] = DEFAULT_TEXT_ENCODER,
    cache: Annotated[Optional[Path], typer.Option("--cache", help="Cache folder (default artifacts/cache).")] = None,
    batch_size: Annotated[int, typer.Option(min=1, help="Images per forward pass.")] = DEFAULT_BATCH,
) -> None:
    """Embed all train and test images and all texts; a second run computes nothing.

    Warns about each problem `picsearch validate` finds in the dataset (and exits 0), then embeds what it can.
    """
    from picsearch.data import load_dataset
    from picsearch.encoders import EncoderUnavailableError, get_image_encoder, get_text_encoder
    from picsearch.features import EmbeddingStore, embed_images, embed_texts, text_digest
    from picsearch.features.embed import dataset_images

    root = data_dir(data)
    warn_about_problems(root)
    cache_dir = cache or default_cache_dir()
    with user_errors(EncoderUnavailableError):
        dataset = load_dataset(root)
        images_encoder = get_image_encoder(image_encoder)
        texts_encoder = get_text_encoder(text_encoder)
    paths, unlisted = dataset_images(dataset)
    texts = list(dict.fromkeys(dataset.query_texts().values()))

    start = time.perf_counter()
    with user_errors(EncoderUnavailableError):
        images = embed_images(paths, images_encoder, cache_dir, batch_size=batch_size)
        middle = time.perf_counter()
        store = EmbeddingStore(cache_dir, texts_encoder.id, texts_encoder.dim)
        texts_todo = len(store.missing(text_digest(text) for text in texts))
        embed_texts(texts, texts_encoder, cache_dir)
    end = time.perf_counter()

    for path, reason in unlisted + images.skipped:
        say(("skipped", "yellow"), " ", reason)
    console.print(
        f"images ({images_encoder.id}): {images.computed} computed, {images.reused} reused, "
        f"{len(unlisted) + len(images.skipped)} skipped in {middle - start:.1f} s\n"
        f"texts ({texts_encoder.id}): {texts_todo} computed, {len(texts) - texts_todo} reused "
        f"in {end - middle:.1f} s\n"
        f"cache: {cache_dir} (total {end - start:.1f} s)",
    )
