"""A small saved index with detector flags, built without models: for review-desk and log tests."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
from PIL import Image, ImageDraw

from picsearch.features.cache import file_digest
from picsearch.index import GalleryIndex, image_id, read_manifest

# (file, child probability); the detector's threshold is 0.5. a.png is a near-duplicate of b.png.
PHOTOS = (("a.png", 0.9), ("b.png", 0.55), ("c.png", 0.62), ("d.png", 0.75), ("e.png", 0.1), ("f.png", 0.2))
THRESHOLD = 0.5


def write_photo(path: Path, seed: int) -> None:
    """A 96x72 picture, a disc on a background, both coloured by ``seed`` (a new seed gives new bytes)."""
    rng = np.random.default_rng(seed)
    background, disc = (tuple(int(c) for c in rng.integers(30, 230, 3)) for _ in range(2))
    image = Image.new("RGB", (96, 72), background)
    x, y = (int(v) for v in rng.integers(10, 50, 2))
    ImageDraw.Draw(image).ellipse((x, y, x + 36, y + 36), fill=disc)
    image.save(path)


def build_review_index(folder: Path) -> Path:
    """Write PHOTOS into ``folder/gallery`` and an index of them into ``folder/index``; return the index."""
    gallery = folder / "gallery"
    gallery.mkdir(parents=True)
    rng = np.random.default_rng(0)
    features = rng.normal(size=(len(PHOTOS), 24)).astype(np.float32)
    features[0] = features[1] + 0.01 * rng.normal(size=24)  # a.png looks like b.png
    for seed, (name, _) in enumerate(PHOTOS):
        write_photo(gallery / name, seed)
    names = [name for name, _ in PHOTOS]
    ids = [image_id(name) for name in names]
    prob = np.array([p for _, p in PHOTOS], dtype=np.float32)
    joint = features[:, :8] / np.linalg.norm(features[:, :8], axis=1, keepdims=True)
    index = GalleryIndex(
        root=gallery.resolve(),
        ids=ids,
        paths=names,
        hashes=[file_digest(gallery / name) for name in names],
        rerank=features,
        child_prob=prob,
        child=prob >= THRESHOLD,
        joint=joint,
    )
    index.save(folder / "index")
    return folder / "index"


def copy_index(index_dir: Path, folder: Path) -> Path:
    """Copy an index and its gallery (``index_dir.parent / "gallery"``) into ``folder``; return the copy's index."""
    shutil.copytree(index_dir.parent / "gallery", folder / "gallery")
    shutil.copytree(index_dir, folder / "index")
    manifest = read_manifest(folder / "index")
    manifest["gallery"] = str((folder / "gallery").resolve())
    (folder / "index" / "manifest.json").write_text(json.dumps(manifest))
    return folder / "index"
