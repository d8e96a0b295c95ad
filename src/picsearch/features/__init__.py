"""Embeddings of image files and texts through a content-hash keyed cache.

- :func:`embed_images` (paths, encoder, cache_dir) -> :class:`ImageEmbeddings`
- :func:`embed_texts` (texts, encoder, cache_dir) -> (n, dim) float32
- :func:`dataset_features` (dataset, image encoder name, text encoder name, cache_dir) ->
  :class:`DatasetFeatures`: every image and text of a dataset, by image name and query id.
"""

from picsearch.features.cache import EmbeddingStore, file_digest, text_digest
from picsearch.features.embed import (
    DatasetFeatures,
    ImageEmbeddings,
    dataset_features,
    embed_images,
    embed_texts,
)

__all__ = [
    "DatasetFeatures",
    "EmbeddingStore",
    "ImageEmbeddings",
    "dataset_features",
    "embed_images",
    "embed_texts",
    "file_digest",
    "text_digest",
]
