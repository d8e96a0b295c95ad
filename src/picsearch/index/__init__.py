"""Gallery index: a vector store interface, the exact numpy store, and incremental builds."""

from picsearch.index.build import UpdateReport, build_index, model_fingerprint
from picsearch.index.gallery import GalleryIndex, IndexFormatError, gallery_files, image_id, read_manifest
from picsearch.index.store import NumpyStore, VectorStore

__all__ = [
    "GalleryIndex",
    "IndexFormatError",
    "NumpyStore",
    "UpdateReport",
    "VectorStore",
    "build_index",
    "gallery_files",
    "image_id",
    "model_fingerprint",
    "read_manifest",
]
