"""Ingest a gallery: list and identify every photo once, embed and score what is new, hand the rows to the index.

One run, under the index folder's lock (:mod:`picsearch.index.lock`):

1. **scan** the gallery (:func:`picsearch.data.files.scan_images`: bad names, symlink loops and links out of
   the gallery are skipped and named) and take each file's identity. A file whose size and times are the
   ones the previous index recorded keeps its recorded hash; any other file is hashed, once.
2. **compare** with the previous index: added, changed, unchanged, removed. A previous index that cannot be
   read (its data folder is gone, another format) is rebuilt from scratch, and the report says so.
3. **embed** the new content through the embedding cache, keyed by those hashes (nothing is hashed again;
   a file that changes between hashing and decoding is skipped).
4. **score**: new rows (every row, when the model changed) are projected into the joint space, into the
   reranker's own vectors (:meth:`RelevanceBundle.rerank_vectors`) and run through the child detector;
   unchanged rows keep their stored vectors and flags. The index keeps no raw features (format 3), so a model
   change embeds every photo again, through the cache; an index of format 1 or 2 is converted from its
   stored raw features.
5. **store**: :meth:`GalleryIndex.save` writes the finished rows, brings the vector store in line with
   the visible ones (detector flags with the review log applied) and swaps the manifest.
"""

from __future__ import annotations

import os
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

import numpy as np

from picsearch.config import default_cache_dir
from picsearch.data.files import FileIdentity, display_name, identify, scan_images
from picsearch.encoders import ImageEncoder, get_image_encoder
from picsearch.features import embed_images
from picsearch.features.embed import available_cpus
from picsearch.index.gallery import (
    CODE_BITS,
    DEFAULT_VECTORS,
    GalleryIndex,
    RERANK_BITS,
    IndexFormatError,
    VECTOR_DTYPES,
    image_id,
    model_fingerprint,
    read_manifest,
    remove_leftovers,
)
from picsearch.index.codec import Segment, codec_of, segments_of, storage_codec
from picsearch.index.lock import index_lock
from picsearch.index.review import Moderation, ReviewLog
from picsearch.index.stores import StoreSpec
from picsearch.models import RelevanceBundle


@dataclass
class UpdateReport:
    """What one `index` run did, by relative path; ``skipped`` holds (path, message naming it and why)."""

    added: list[str] = field(default_factory=list)
    changed: list[str] = field(default_factory=list)
    removed: list[str] = field(default_factory=list)
    unchanged: int = 0
    skipped: list[tuple[str, str]] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
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


@dataclass(frozen=True)
class _Photo:
    """One gallery file as scanned: its path relative to the gallery, and what was checked about it."""

    relative: str
    path: Path
    identity: FileIdentity


def build_index(
    gallery: Path,
    model_dir: Path,
    out: Path,
    cache_dir: Path | None = None,
    *,
    bundle: RelevanceBundle | None = None,
    encoder: ImageEncoder | None = None,
    vector_dtype: str | None = None,
    store: StoreSpec | None = None,
    batch_size: int = 32,
    progress: bool = True,
    wait: bool = True,
    on_wait: Callable[[str], None] | None = None,
) -> UpdateReport:
    """Index the photos under ``gallery`` with the models in ``model_dir`` into ``out``.

    When ``out`` already holds an index, only added or changed files are embedded (through the
    embedding cache at ``cache_dir``, default ``MODEL_DIR/cache``), removed files are dropped, and
    if the model changed every photo is embedded again (from the cache) and projected anew. While another
    process updates ``out``, ``wait`` for it (telling ``on_wait`` its pid) or raise
    :class:`picsearch.index.lock.IndexLockedError`. ``store`` chooses the vector store (default: the
    previous index's, else exact); a new choice moves the stored vectors there without embedding.
    """
    gallery, model_dir, out = Path(gallery), Path(model_dir), Path(out)
    if not gallery.is_dir():
        raise FileNotFoundError(f"{gallery}: gallery folder not found")
    if vector_dtype is not None and vector_dtype not in VECTOR_DTYPES:
        raise ValueError(f"--vectors: expected one of {', '.join(VECTOR_DTYPES)}, got {vector_dtype!r}")
    bundle = bundle or RelevanceBundle.load(model_dir)
    encoder = encoder or get_image_encoder(bundle.image_encoder)
    fingerprint = model_fingerprint(model_dir)
    with index_lock(out, wait, on_wait):
        report = UpdateReport()
        previous = _previous(out, encoder.id, report)
        vector_dtype = vector_dtype or (previous.vector_dtype if previous else DEFAULT_VECTORS)
        photos = _scan(gallery, previous, report)
        reused = _compare(photos, previous, report)
        cache_dir = cache_dir or default_cache_dir(model_dir)
        report.rescored = previous is not None and previous.meta.get("model_fingerprint") != fingerprint
        if report.rescored and not previous.raw_features:
            reused = {}  # no raw features stored: a new model needs every photo embedded again
        fresh = _embed([p for p in photos if p.relative not in reused], encoder, cache_dir, batch_size, progress, report)
        index = _assemble(gallery, photos, reused, fresh, previous, bundle, report.rescored, encoder, vector_dtype)
        index.meta = {
            "image_encoder": bundle.image_encoder,
            "text_encoder": bundle.text_encoder,
            "image_encoder_id": encoder.id,
            "model": str(model_dir.resolve()),
            "model_fingerprint": fingerprint,
            "created": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
        }
        index.store = store or (previous.store if previous else StoreSpec())
        report.total, report.child_flagged = len(index), int(index.child.sum())
        if _differs(index, previous):
            index.save(out, visible=_visible(index, out))
        report.notes += [f"{out / name}: removed, left by an interrupted run" for name in remove_leftovers(out)]
    return report


def _previous(out: Path, encoder_id: str, report: UpdateReport) -> GalleryIndex | None:
    """The existing index at ``out`` if it is readable and its raw features came from the same image encoder."""
    if not (out / "manifest.json").is_file():
        return None
    try:
        if read_manifest(out).get("image_encoder_id") != encoder_id:
            return None
        return GalleryIndex.load(out, mmap=False)
    except (OSError, ValueError, KeyError, TypeError, IndexFormatError) as exc:
        report.notes.append(f"{out}: the previous index cannot be read ({exc}); rebuilding it")
        return None


def _scan(gallery: Path, previous: GalleryIndex | None, report: UpdateReport) -> list[_Photo]:
    """The gallery's image files with their identities (hashed in parallel where the stat changed)."""
    listing = scan_images(gallery, recursive=True)
    report.skipped += [(name, f"{name}: {reason}") for name, reason in listing.skipped]
    recorded = {path: previous.identity(row) for row, path in enumerate(previous.paths)} if previous else {}
    relative = [path.relative_to(gallery).as_posix() for path in listing.files]
    with ThreadPoolExecutor(max_workers=min(4, available_cpus())) as pool:
        identities = list(pool.map(_identity, listing.files, [recorded.get(rel) for rel in relative]))
    photos = []
    for rel, path, identity in zip(relative, listing.files, identities):
        if isinstance(identity, OSError):
            report.skipped.append((rel, f"{display_name(rel)}: cannot read ({identity.strerror or identity})"))
        else:
            photos.append(_Photo(rel, path, identity))
    return photos


def _identity(path: Path, recorded: FileIdentity | None) -> FileIdentity | OSError:
    """The recorded identity while size and times match it, else a fresh hash; the error if unreadable."""
    try:
        if recorded is not None and recorded.same_stat(os.stat(path)):
            return recorded
        return identify(path)
    except OSError as exc:
        return exc


def _compare(photos: list[_Photo], previous: GalleryIndex | None, report: UpdateReport) -> dict[str, int]:
    """Sort photos into added / changed / unchanged and the index's rows into removed; returns
    the unchanged photos' rows in the previous index."""
    old_rows = previous.rows() if previous else {}
    reused: dict[str, int] = {}
    for photo in photos:
        row = old_rows.get(image_id(photo.relative))
        if row is None:
            report.added.append(photo.relative)
        elif previous.hashes[row] != photo.identity.digest:
            report.changed.append(photo.relative)
        else:
            reused[photo.relative] = row
    report.unchanged = len(reused)
    current = {image_id(photo.relative) for photo in photos}
    report.removed = [path for i, path in zip(previous.ids, previous.paths) if i not in current] if previous else []
    return reused


def _embed(
    photos: list[_Photo], encoder: ImageEncoder, cache_dir: Path, batch_size: int, progress: bool, report: UpdateReport
) -> dict[str, np.ndarray]:
    """Features of the new or changed photos by relative path; unreadable ones move to ``report.skipped``."""
    by_path = {photo.path: photo.relative for photo in photos}
    embedded = embed_images(
        [p.path for p in photos], encoder, cache_dir, batch_size=batch_size, progress=progress,
        identities=[p.identity for p in photos],
    )
    report.skipped += [(by_path[path], reason) for path, reason in embedded.skipped]
    unreadable = {by_path[path] for path, _ in embedded.skipped}
    report.removed += [rel for rel in report.changed if rel in unreadable]  # its old version is gone
    report.added = [rel for rel in report.added if rel not in unreadable]
    report.changed = [rel for rel in report.changed if rel not in unreadable]
    return {by_path[path]: vector for path, vector in zip(embedded.paths, embedded.vectors)}


def _assemble(
    gallery: Path,
    photos: list[_Photo],
    reused: dict[str, int],
    fresh: dict[str, np.ndarray],
    previous: GalleryIndex | None,
    bundle: RelevanceBundle,
    rescore: bool,
    encoder: ImageEncoder,
    vector_dtype: str,
) -> GalleryIndex:
    """The finished rows in gallery order: reused rows copy their stored vectors and flags; fresh rows (every
    row after a model change or from an index of raw features) are projected and scored by the child detector
    now, from their new features or the raw features an older index stored."""
    kept = [photo for photo in photos if photo.relative in reused or photo.relative in fresh]
    old = np.array([reused.get(photo.relative, -1) for photo in kept], dtype=np.int64)
    score = (old < 0) | rescore | bool(previous is not None and previous.raw_features)
    features = np.zeros((int(score.sum()), encoder.dim), dtype=np.float32)
    for i, (photo, row) in enumerate(zip([p for p, s in zip(kept, score) if s], old[score])):
        features[i] = fresh[photo.relative] if photo.relative in fresh else previous.rerank[int(row)]
    joint, rerank, child_prob = _score(features, score, old, previous, bundle)
    reusing = previous is not None and not score.all()  # reused rows keep their codes
    rerank_codec = storage_codec(
        rerank, RERANK_BITS, codec_of(previous.rerank) if reusing else None, _rerank_segments(bundle, encoder)
    )
    vector_codec = storage_codec(
        joint, CODE_BITS.get(vector_dtype), codec_of(previous.joint) if reusing else None, _joint_segments(bundle)
    )
    return GalleryIndex(
        root=gallery.resolve(),
        ids=[image_id(photo.relative) for photo in kept],
        paths=[photo.relative for photo in kept],
        hashes=[photo.identity.digest for photo in kept],
        stats=np.array([[p.identity.size, p.identity.mtime_ns, p.identity.ctime_ns] for p in kept], dtype=np.int64),
        rerank=rerank,
        child_prob=child_prob,
        child=child_prob >= bundle.child_threshold,
        joint=joint,
        rerank_codec=rerank_codec,
        vector_dtype=vector_dtype,
        vector_codec=vector_codec,
    )


def _score(
    features: np.ndarray, score: np.ndarray, old: np.ndarray, previous: GalleryIndex | None, bundle: RelevanceBundle
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Joint vectors, rerank vectors and child probabilities: computed from ``features`` for the ``score`` rows,
    copied from ``previous`` for the rest."""
    child = bundle.child_probability(features) if len(features) else np.zeros(0, dtype=np.float32)
    computed = (bundle.joint_image(features), bundle.rerank_vectors(features), child)
    stored = (previous.joint, previous.rerank, previous.child_prob) if previous is not None else (None,) * 3
    out = []
    for part, kept in zip(computed, stored):
        column = np.zeros((len(score), *part.shape[1:]), dtype=np.float32)
        column[score] = part
        if (~score).any():
            column[~score] = kept[old[~score]]
        out.append(column)
    return out[0], out[1], out[2]


def _rerank_segments(bundle: RelevanceBundle, encoder: ImageEncoder) -> tuple[Segment, ...]:
    """Where fresh rerank vectors get a scale of their own: per matcher's block of rerank vectors, or per field
    of raw features (probabilities as square roots)."""
    layout = bundle.rerank_layout
    if layout is None:
        return segments_of(encoder.fields, encoder.dim)
    edges = np.cumsum([0, *layout.own.values()])
    return tuple(Segment(int(a), int(b)) for a, b in zip(edges[:-1], edges[1:]))


def _joint_segments(bundle: RelevanceBundle) -> tuple[Segment, ...]:
    """A scale per matcher's block of the joint space, with column weights (CV, int4 codes: joint R@5 -0.0017
    against float32, 0.0047 better than one scale a row; reranked R@5 +0.0014)."""
    return tuple(Segment(start, stop) for start, stop, _ in bundle.joint.blocks.values())


def _visible(index: GalleryIndex, out: Path) -> np.ndarray:
    """Rows a query may return: the detector's flags with the review log at ``out`` applied."""
    moderation = Moderation(index, ReviewLog.of_index(out))
    moderation.refresh()
    return ~moderation.hidden()


def _differs(index: GalleryIndex, previous: GalleryIndex | None) -> bool:
    """Whether ``index`` must be written: anything but the same rows, model, gallery and file stats."""
    if previous is None:
        return True
    return (
        index.ids != previous.ids
        or index.hashes != previous.hashes
        or index.meta.get("model_fingerprint") != previous.meta.get("model_fingerprint")
        or str(index.root) != str(previous.root)
        or not np.array_equal(index.stats, previous.stats)
        or not np.array_equal(index.child, previous.child)
        or (index.store.kind, index.store.uri) != (previous.store.kind, previous.store.uri)
    )
