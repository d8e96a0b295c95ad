"""Data layer: the course-format tables and images, loaded and checked."""

from picsearch.data.tables import Dataset, load_dataset

__all__ = ["Dataset", "load_dataset"]
