"""Embed image files and texts through the cache: decode in a thread pool while the model runs on its workers.

The model runs :func:`~picsearch.runtime.model_workers` calls at once: one per CPU when the entry point gave each
one compute thread (`train`, `demo`), else one (see ``python -m picsearch.bench.embed --workers``).

Only what the cache lacks is computed; every finished batch is flushed as a chunk, so an
interrupted run resumes where it stopped. Unreadable images are reported and skipped.
"""

from __future__ import annotations

import os
import time
from collections import deque
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Iterator, Sequence

import numpy as np
from tqdm.auto import tqdm

from picsearch.config import default_cache_dir
from picsearch.data import Dataset, load_dataset
from picsearch.data.files import FileIdentity, display_name, scan_images
from picsearch.data.images import ImageReadError, read_image
from picsearch.encoders import (
    DEFAULT_IMAGE_ENCODER,
    ConcatTextEncoder,
    DEFAULT_TEXT_ENCODER,
    ImageEncoder,
    TextEncoder,
    get_image_encoder,
    get_text_encoder,
)
from picsearch.features.cache import EmbeddingStore, file_digest, text_digest
from picsearch.runtime import available_cpus, model_workers, worker_pool

TEXT_BATCH = 256
PREFETCH_BATCHES = 4
FLUSH_SECONDS = 5.0  # at most this much work is lost when a run is killed
DEFAULT_BATCH = 4  # small batches keep activations in cache: fastest on CPU (see bench.embed)


@dataclass(frozen=True)
class ImageEmbeddings:
    """Vectors of the images that could be read, in input order; the others in ``skipped``."""

    paths: list[Path]
    vectors: np.ndarray
    skipped: list[tuple[Path, str]]
    computed: int
    reused: int


def embed_images(
    paths: Sequence[str | os.PathLike],
    encoder: ImageEncoder,
    cache_dir: str | os.PathLike,
    batch_size: int = DEFAULT_BATCH,
    progress: bool = True,
    workers: int | None = None,
    identities: Sequence[FileIdentity] | None = None,
    forward_workers: int | None = None,
) -> ImageEmbeddings:
    """Vectors of the image files ``paths`` by ``encoder``, computing only what ``cache_dir`` lacks.

    Files are keyed by content, so renamed copies reuse their vectors and an edited file is
    re-embedded alone. ``workers`` threads hash, decode and preprocess ahead of the model, which runs
    ``forward_workers`` batches at once (default :func:`~picsearch.runtime.model_workers`).
    ``identities`` (one per path) are hashes the caller already took: nothing is hashed again, and
    a file whose size or times changed since is skipped rather than embedded under the old hash.
    """
    if batch_size < 1:
        raise ValueError(f"batch size must be at least 1, got {batch_size}")
    paths = [Path(path) for path in paths]
    store = EmbeddingStore(cache_dir, encoder.id, encoder.dim)
    with ThreadPoolExecutor(max_workers=workers or min(4, available_cpus())) as pool:
        if identities is None:
            digests = list(pool.map(_digest_or_reason, paths))
        else:
            digests = [(identity.digest, "") for identity in identities]
        expected = dict(zip(paths, identities or ()))
        skipped = [(path, reason) for path, (_, reason) in zip(paths, digests) if reason]
        keyed = {key: path for path, (key, reason) in zip(paths, digests) if not reason}
        todo = [(key, keyed[key], expected.get(keyed[key])) for key in store.missing(keyed)]
        computed = _compute(todo, encoder, store, batch_size, pool, skipped, progress, forward_workers)
    store.compact()
    reported = {path for path, _ in skipped}
    kept = [(path, key) for path, (key, _) in zip(paths, digests) if key and key in store]
    skipped.extend(
        (path, f"{display_name(path)}: same content as {display_name(keyed[key])}, which could not be read")
        for path, (key, _) in zip(paths, digests)
        if key and key not in store and path not in reported
    )
    return ImageEmbeddings(
        paths=[path for path, _ in kept],
        vectors=store.get([key for _, key in kept]),
        skipped=skipped,
        computed=computed,
        reused=len(kept) - computed,
    )


def _compute(
    todo: list[tuple[str, Path, FileIdentity | None]],
    encoder: ImageEncoder,
    store: EmbeddingStore,
    batch_size: int,
    pool: ThreadPoolExecutor,
    skipped: list[tuple[Path, str]],
    progress: bool,
    forward_workers: int | None,
) -> int:
    """Embed the (key, path, identity) items into ``store``, appending unreadable files to ``skipped``; returns how many.

    Batches go to the model in input order and are stored in that order, at most ``forward_workers`` in flight."""
    pending = _PendingChunk(store)
    running: deque[tuple[list[str], Future[np.ndarray]]] = deque()
    in_flight = forward_workers or model_workers()
    try:
        with tqdm(total=len(todo), desc=f"images {encoder.id}", unit="img", disable=not progress) as bar, \
                worker_pool(in_flight, "forward") as forwards:
            for keys, batch, failures in _batches(todo, encoder, batch_size, pool):
                skipped.extend(failures)
                bar.update(len(failures))
                if keys:
                    running.append((keys, forwards.submit(encoder.encode_arrays, batch)))
                while len(running) > in_flight or (running and running[0][1].done()):
                    bar.update(_store_oldest(running, pending))
            while running:
                bar.update(_store_oldest(running, pending))
    finally:
        pool.shutdown(wait=True, cancel_futures=True)
        for keys, forward in running:  # left in flight by an error: keep the batches that finished
            if forward.done() and not forward.cancelled() and forward.exception() is None:
                pending.append(keys, forward.result())
        pending.flush()  # keep what was computed, also when interrupted
    return pending.flushed


def _store_oldest(running: deque[tuple[list[str], Future[np.ndarray]]], pending: _PendingChunk) -> int:
    """Wait for the oldest batch in flight and queue its vectors for the store; returns its size."""
    keys, forward = running.popleft()
    pending.append(keys, forward.result())
    return len(keys)


class _PendingChunk:
    """Batches computed but not yet stored; written as one chunk every FLUSH_SECONDS."""

    def __init__(self, store: EmbeddingStore) -> None:
        self.store = store
        self.keys: list[str] = []
        self.vectors: list[np.ndarray] = []
        self.flushed = 0
        self.last_flush = time.monotonic()

    def append(self, keys: list[str], vectors: np.ndarray) -> None:
        self.keys.extend(keys)
        self.vectors.append(vectors)
        if time.monotonic() - self.last_flush >= FLUSH_SECONDS:
            self.flush()

    def flush(self) -> None:
        if self.keys:
            self.store.add(self.keys, np.concatenate(self.vectors))
            self.flushed += len(self.keys)
        self.keys, self.vectors, self.last_flush = [], [], time.monotonic()


def _digest_or_reason(path: Path) -> tuple[str, str]:
    try:
        return file_digest(path), ""
    except OSError as exc:
        return "", f"{display_name(path)}: cannot read ({exc.strerror or exc})"


def _load(path: Path, encoder: ImageEncoder, expected: FileIdentity | None) -> np.ndarray:
    """Read and preprocess one image; with ``expected``, only the bytes whose stat it recorded."""
    if expected is None:
        return encoder.preprocess(read_image(path))
    with open(path, "rb") as handle:
        if not expected.same_stat(os.fstat(handle.fileno())):
            raise ImageReadError(path, "changed while being indexed; index again")
        data = handle.read()
    return encoder.preprocess(read_image(path, data=data))


def _batches(
    todo: list[tuple[str, Path, FileIdentity | None]], encoder: ImageEncoder, batch_size: int, pool: ThreadPoolExecutor
) -> Iterator[tuple[list[str], np.ndarray, list[tuple[Path, str]]]]:
    """Yield (keys, preprocessed batch, failures); the pool works up to PREFETCH_BATCHES batches ahead."""
    upcoming = iter(todo)
    pending: deque[tuple[str, Path, Future]] = deque()

    def submit(count: int) -> None:
        for _ in range(count):
            item = next(upcoming, None)
            if item is None:
                return
            key, path, expected = item
            pending.append((key, path, pool.submit(_load, path, encoder, expected)))

    submit(batch_size * (PREFETCH_BATCHES + 1))
    while pending:
        keys, arrays, failures = [], [], []
        while pending and len(keys) < batch_size:
            key, path, future = pending.popleft()
            submit(1)
            try:
                arrays.append(future.result())
                keys.append(key)
            except (ImageReadError, ValueError) as exc:
                failures.append((path, str(exc)))
            except OSError as exc:
                failures.append((path, f"{display_name(path)}: cannot read ({exc.strerror or exc})"))
        batch = np.stack(arrays) if arrays else np.zeros((0,), dtype=np.float32)
        yield keys, batch, failures


def embed_texts(
    texts: Sequence[str],
    encoder: TextEncoder,
    cache_dir: str | os.PathLike,
    progress: bool = True,
    forward_workers: int | None = None,
) -> np.ndarray:
    """Vectors (len(texts), dim) of ``texts`` by ``encoder``, computing only what ``cache_dir`` lacks, in chunks of
    at most :data:`TEXT_BATCH` that ``forward_workers`` threads encode at once (default
    :func:`~picsearch.runtime.model_workers`); each chunk is stored as it is done.

    A :class:`ConcatTextEncoder` is cached part by part, so its parts share vectors with their own uses."""
    if isinstance(encoder, ConcatTextEncoder):
        return np.hstack([embed_texts(texts, part, cache_dir, progress, forward_workers) for part in encoder.parts])
    store = EmbeddingStore(cache_dir, encoder.id, encoder.dim)
    keys = [text_digest(text) for text in texts]
    by_key = dict(zip(keys, texts))
    todo = store.missing(keys)
    workers = forward_workers or model_workers()
    size = max(1, min(TEXT_BATCH, -(-len(todo) // workers)))  # every worker gets a chunk, even of few texts
    chunks = [todo[start : start + size] for start in range(0, len(todo), size)]
    with tqdm(total=len(todo), desc=f"texts {encoder.id}", unit="text", disable=not progress) as bar, \
            worker_pool(workers, "forward") as forwards:
        encoded = [forwards.submit(encoder.encode, [by_key[key] for key in chunk]) for chunk in chunks]
        for chunk, vectors in zip(chunks, encoded):
            store.add(chunk, vectors.result())
            bar.update(len(chunk))
    store.compact()
    return store.get(keys)


@dataclass(frozen=True)
class DatasetFeatures:
    """Vectors of every image (train and test folders) and every text of a dataset.

    ``image_row[name]`` is the row of ``image_vectors`` for an image file name; ``text_row[query_id]``
    the row of ``text_vectors`` for a caption or query id. ``fields`` names column ranges of the
    image vectors (see :class:`picsearch.encoders.ImageEncoder`).
    """

    image_encoder_id: str
    text_encoder_id: str
    fields: dict[str, tuple[int, int]]
    image_vectors: np.ndarray
    image_row: dict[str, int]
    text_vectors: np.ndarray
    text_row: dict[str, int]
    skipped: list[tuple[Path, str]] = field(default_factory=list)

    def images(self, names: Sequence[str]) -> np.ndarray:
        """Image vectors for file names, in order (KeyError names one that was not embedded)."""
        return self.image_vectors[[self.image_row[name] for name in names]]

    def texts(self, query_ids: Sequence[str]) -> np.ndarray:
        """Text vectors for query ids, in order."""
        return self.text_vectors[[self.text_row[query_id] for query_id in query_ids]]


def dataset_features(
    dataset: Dataset | str | os.PathLike,
    image_encoder_name: str = DEFAULT_IMAGE_ENCODER,
    text_encoder_name: str = DEFAULT_TEXT_ENCODER,
    cache_dir: str | os.PathLike | None = None,
    batch_size: int = DEFAULT_BATCH,
    progress: bool = False,
) -> DatasetFeatures:
    """Embed (or read from the cache) all train and test images and all texts of ``dataset``.

    ``dataset`` is a loaded :class:`Dataset` or its folder. An image name present in both
    folders maps to the train copy. Skipped (unreadable) images are absent from ``image_row``.
    """
    if not isinstance(dataset, Dataset):
        dataset = load_dataset(Path(dataset))
    cache_dir = default_cache_dir() if cache_dir is None else cache_dir
    image_encoder = get_image_encoder(image_encoder_name)
    text_encoder = get_text_encoder(text_encoder_name)
    paths, unlisted = dataset_images(dataset)
    images = embed_images(paths, image_encoder, cache_dir, batch_size=batch_size, progress=progress)
    texts = dataset.query_texts()
    return DatasetFeatures(
        image_encoder_id=image_encoder.id,
        text_encoder_id=text_encoder.id,
        fields=dict(image_encoder.fields),
        image_vectors=images.vectors,
        image_row=_first_rows(path.name for path in images.paths),
        text_vectors=embed_texts(list(texts.values()), text_encoder, cache_dir, progress=progress),
        text_row={query_id: row for row, query_id in enumerate(texts)},
        skipped=unlisted + images.skipped,
    )


def dataset_images(dataset: Dataset) -> tuple[list[Path], list[tuple[Path, str]]]:
    """Image files of the train and test folders, and ``(path, message)`` of the entries skipped by name."""
    paths: list[Path] = []
    skipped: list[tuple[Path, str]] = []
    for folder in (dataset.train_images_dir, dataset.test_images_dir):
        listing = scan_images(folder)
        paths += listing.files
        skipped += [(folder / name, f"{display_name(folder)}/{name}: {reason}") for name, reason in listing.skipped]
    return paths, skipped


def _first_rows(names: Iterator[str]) -> dict[str, int]:
    rows: dict[str, int] = {}
    for row, name in enumerate(names):
        rows.setdefault(name, row)
    return rows
