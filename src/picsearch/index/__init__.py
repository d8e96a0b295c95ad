"""Gallery index: storage (manifest, data folders, vector stores, the writer's lock) and ingestion.

`gallery.py`, `store.py` and `lock.py` only store and load; `ingest.py` reads a gallery, embeds and
scores it, and hands the finished rows to `GalleryIndex.save`.
"""

from picsearch.index.gallery import GalleryIndex, IndexFormatError, image_id, model_fingerprint, read_manifest
from picsearch.index.ingest import UpdateReport, build_index
from picsearch.index.lock import IndexLockedError, index_lock
from picsearch.index.store import NumpyStore, VectorStore

__all__ = [
    "GalleryIndex",
    "IndexFormatError",
    "IndexLockedError",
    "NumpyStore",
    "UpdateReport",
    "VectorStore",
    "build_index",
    "image_id",
    "index_lock",
    "model_fingerprint",
    "read_manifest",
]
