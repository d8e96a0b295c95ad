"""What the benchmarks share: the dataset folder (or a one-line error), features and a training set."""

from __future__ import annotations

import os
import sys
from pathlib import Path

from picsearch.config import DataPathError, resolve_data_dir
from picsearch.data import Dataset, load_dataset
from picsearch.encoders import DEFAULT_IMAGE_ENCODER, DEFAULT_TEXT_ENCODER
from picsearch.features import DatasetFeatures, dataset_features
from picsearch.models.selection import TRAINING_DATA_OPTIONS, Encoders
from picsearch.models.train import encoders_of
from picsearch.models.trainset import TrainingSet


def data_dir(explicit: str | os.PathLike | None) -> Path:
    """The dataset folder (``--data``, else ``$PICSEARCH_DATA``, else the default); when there is none, exit 2
    with one line on stderr naming the folder looked for and how to give another."""
    try:
        return resolve_data_dir(explicit)
    except DataPathError as exc:
        print(f"error: {exc}", file=sys.stderr)
        raise SystemExit(2) from None


def bench_dataset(explicit: str | os.PathLike | None) -> Dataset:
    """The dataset at :func:`data_dir`."""
    return load_dataset(data_dir(explicit))


def load_features(
    explicit: str | os.PathLike | None, cache: Path, image_encoder: str = DEFAULT_IMAGE_ENCODER
) -> tuple[Dataset, DatasetFeatures]:
    """The dataset at :func:`data_dir` and its features by ``image_encoder`` and the default text encoder,
    through the cache at ``cache``."""
    dataset = bench_dataset(explicit)
    return dataset, dataset_features(dataset, image_encoder, DEFAULT_TEXT_ENCODER, cache)


def training_set(
    dataset: Dataset, feats: DatasetFeatures, cache: Path, option: str = "expert", text_encoder: str = DEFAULT_TEXT_ENCODER,
    image_encoder: str = DEFAULT_IMAGE_ENCODER,
) -> tuple[Encoders, TrainingSet]:
    """The encoders behind ``feats`` (``image_encoder`` and ``text_encoder`` made its vectors) and the training set
    of ``option`` (a name in :data:`TRAINING_DATA_OPTIONS`), as `picsearch train` builds them."""
    encoders = encoders_of(feats, image_encoder, text_encoder, cache)
    return encoders, TRAINING_DATA_OPTIONS[option].build(dataset, feats, encoders.layout)
