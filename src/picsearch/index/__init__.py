"""Gallery index: storage (manifest, data folders, vector stores, the writer's lock) and ingestion.

`gallery.py`, `stores/` and `lock.py` only store and load; `ingest.py` reads a gallery, embeds and
scores it, and hands the finished rows to `GalleryIndex.save`.
"""

from picsearch.index.gallery import GalleryIndex, IndexFormatError, image_id, model_fingerprint, read_manifest
from picsearch.index.ingest import UpdateReport, build_index
from picsearch.index.lock import IndexLockedError, index_lock
from picsearch.index.stores import (
    NumpyStore,
    StoreSpec,
    StoreSpecError,
    VectorStore,
    parse_store,
    reconcile,
    vector_lookup,
)

__all__ = [
    "GalleryIndex",
    "IndexFormatError",
    "IndexLockedError",
    "NumpyStore",
    "StoreSpec",
    "StoreSpecError",
    "UpdateReport",
    "VectorStore",
    "build_index",
    "image_id",
    "index_lock",
    "model_fingerprint",
    "parse_store",
    "read_manifest",
    "reconcile",
    "vector_lookup",
]
