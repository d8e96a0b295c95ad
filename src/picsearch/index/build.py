"""Build or update a gallery index: embed only what is new or changed, drop what is gone."""

from __future__ import annotations

import hashlib
import time
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from picsearch.config import default_cache_dir
from picsearch.encoders import ImageEncoder, get_image_encoder
from picsearch.features import embed_images
from picsearch.features.cache import file_digest
from picsearch.index.gallery import GalleryIndex, gallery_files, image_id, read_manifest
from picsearch.index.store import NumpyStore
from picsearch.models import RelevanceBundle
from picsearch.models.artifacts import MANIFEST

MODEL_FILES = (MANIFEST, "*.safetensors", "*.lgb.txt")  # what RelevanceBundle.load reads


@dataclass
class UpdateReport:
    """What one `index` run did, by relative path."""

    added: list[str] = field(default_factory=list)
    changed: list[str] = field(default_factory=list)
    removed: list[str] = field(default_factory=list)
    unchanged: int = 0
    skipped: list[tuple[str, str]] = field(default_factory=list)
    rescored: bool = False
    total: int = 0
    child_flagged: int = 0

    @property
    def wrote(self) -> bool:
        return bool(self.added or self.changed or self.removed or self.rescored)

    def summary(self) -> str:
        text = (
            f"added {len(self.added)}, changed {len(self.changed)}, removed {len(self.removed)}, "
            f"unchanged {self.unchanged}, skipped {len(self.skipped)}; "
            f"{self.total} images indexed, {self.child_flagged} hidden by the child detector"
        )
        return text + ("; joint vectors recomputed for a new model" if self.rescored else "")


def build_index(
    gallery: Path,
    model_dir: Path,
    out: Path,
    cache_dir: Path | None = None,
    *,
    bundle: RelevanceBundle | None = None,
    encoder: ImageEncoder | None = None,
    vector_dtype: str = "float32",
    batch_size: int = 32,
    progress: bool = True,
) -> UpdateReport:
    """Index the photos under ``gallery`` with the models in ``model_dir`` into ``out``.

    When ``out`` already holds an index, only added or changed files are embedded (through the
    embedding cache at ``cache_dir``, default ``MODEL_DIR/cache``), removed files are dropped, and
    if the model changed the joint vectors are recomputed from the stored features.
    """
    gallery, model_dir = Path(gallery), Path(model_dir)
    bundle = bundle or RelevanceBundle.load(model_dir)
    encoder = encoder or get_image_encoder(bundle.image_encoder)
    fingerprint = model_fingerprint(model_dir)
    previous = _previous(out, encoder.id)
    files = gallery_files(gallery)
    relative = [path.relative_to(gallery).as_posix() for path in files]
    hashes = [file_digest(path) for path in files]

    report, unchanged = _compare(relative, hashes, previous)
    todo = [path for path, rel in zip(files, relative) if rel not in unchanged]
    cache_dir = cache_dir or default_cache_dir(model_dir)
    embedded = embed_images(todo, encoder, cache_dir, batch_size=batch_size, progress=progress)
    report.skipped = [(path.relative_to(gallery).as_posix(), reason) for path, reason in embedded.skipped]
    unreadable = {rel for rel, _ in report.skipped}
    report.removed += [rel for rel in report.changed if rel in unreadable]  # its old version is gone
    report.added = [rel for rel in report.added if rel not in unreadable]
    report.changed = [rel for rel in report.changed if rel not in unreadable]
    new_features = dict(zip((path.relative_to(gallery).as_posix() for path in embedded.paths), embedded.vectors))

    rescore = previous is not None and previous.meta.get("model_fingerprint") != fingerprint
    index = _assemble(gallery, relative, hashes, previous, unchanged, new_features, bundle, rescore, vector_dtype)
    index.meta = {
        "image_encoder": bundle.image_encoder,
        "text_encoder": bundle.text_encoder,
        "image_encoder_id": encoder.id,
        "model": str(model_dir.resolve()),
        "model_fingerprint": fingerprint,
        "created": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
    }
    report.rescored = rescore
    report.total, report.child_flagged = len(index), int(index.child.sum())
    if report.wrote or previous is None or str(gallery.resolve()) != str(previous.root):
        index.save(Path(out))
    return report


def model_fingerprint(model_dir: Path) -> str:
    """sha256 over the bundle's files (names and bytes): an index remembers which model made it."""
    digest = hashlib.sha256()
    files = sorted({path for pattern in MODEL_FILES for path in Path(model_dir).glob(pattern)})
    if not files:
        raise FileNotFoundError(f"{model_dir}: no trained models here (missing {MANIFEST}); run `picsearch train`")
    for path in files:
        digest.update(path.name.encode() + b"\0" + path.read_bytes())
    return digest.hexdigest()


def _compare(relative: list[str], hashes: list[str], previous: GalleryIndex | None) -> tuple[UpdateReport, set[str]]:
    """Sort the gallery's files into added / changed / unchanged, and the index's rows into removed."""
    report, unchanged = UpdateReport(), set()
    old_rows = previous.rows() if previous else {}
    for rel, digest in zip(relative, hashes):
        row = old_rows.get(image_id(rel))
        if row is None:
            report.added.append(rel)
        elif previous.hashes[row] != digest:
            report.changed.append(rel)
        else:
            unchanged.add(rel)
    report.unchanged = len(unchanged)
    current = {image_id(rel) for rel in relative}
    report.removed = [path for i, path in zip(previous.ids, previous.paths) if i not in current] if previous else []
    return report, unchanged


def _previous(out: Path, encoder_id: str) -> GalleryIndex | None:
    """The existing index at ``out`` if its raw features came from the same image encoder."""
    if not (Path(out) / "manifest.json").is_file():
        return None
    if read_manifest(Path(out)).get("image_encoder_id") != encoder_id:
        return None
    return GalleryIndex.load(Path(out), mmap=False)


def _assemble(
    gallery: Path,
    relative: list[str],
    hashes: list[str],
    previous: GalleryIndex | None,
    unchanged: set[str],
    new_features: dict[str, np.ndarray],
    bundle: RelevanceBundle,
    rescore: bool,
    vector_dtype: str,
) -> GalleryIndex:
    """Rows in gallery order: unchanged rows reuse their stored vectors (unless the model changed),
    new rows are projected into the joint space and scored by the child detector now."""
    rows = [i for i, rel in enumerate(relative) if rel in unchanged or rel in new_features]
    ids = [image_id(relative[i]) for i in rows]
    old_rows = previous.rows() if previous else {}
    old = np.array([old_rows[i] if relative[r] in unchanged else -1 for i, r in zip(ids, rows)], dtype=np.int64)
    kept = old >= 0
    dim = previous.features.shape[1] if previous else len(next(iter(new_features.values()), []))
    features = np.zeros((len(rows), dim), dtype=np.float32)
    if kept.any():
        features[kept] = previous.features[old[kept]]
    if (~kept).any():
        features[~kept] = np.stack([new_features[relative[r]] for r, k in zip(rows, kept) if not k])
    project = np.ones(len(rows), dtype=bool) if rescore else ~kept
    projected = bundle.joint_image(features[project]) if project.any() else None
    joint_dim = projected.shape[1] if projected is not None else previous.store.dim if previous else 0
    joint = np.zeros((len(rows), joint_dim), dtype=np.float32)
    child_prob = np.zeros(len(rows), dtype=np.float32)
    if projected is not None:
        joint[project] = projected
        child_prob[project] = bundle.child_probability(features[project])
    if (~project).any():
        joint[~project] = previous.store.vectors[old[~project]]
        child_prob[~project] = previous.child_prob[old[~project]]
    return GalleryIndex(
        root=gallery.resolve(),
        ids=ids,
        paths=[relative[i] for i in rows],
        hashes=[hashes[i] for i in rows],
        features=features,
        child_prob=child_prob,
        child=child_prob >= bundle.child_threshold,
        store=NumpyStore(np.asarray(ids, dtype=str), joint.astype(vector_dtype)),
    )
