"""The Milvus store: one collection in Milvus Lite (a file in the index folder) or on a Milvus server.

The same pymilvus client talks to both. Milvus builds and searches its own ANN index (``AUTOINDEX``
with inner product unless ``index_type`` says otherwise); picsearch only inserts, deletes and asks.
Every request uses strong consistency, so a photo deleted (hidden, removed) is never returned by the
next search. Milvus Lite serves one process at a time: a second process opening the same file gets
a one-line error naming it (use a server for a shared index).
"""

from __future__ import annotations

import secrets
from pathlib import Path
from typing import Sequence

import numpy as np

LITE_FILE = "milvus.db"
ID_LENGTH = 16  # image ids are 16 hex digits
MAX_TOP_K = 16_384  # Milvus's limit on one search's top-k
QUERY_BATCH = 10_000


class MilvusStoreError(ValueError):
    """Milvus could not be reached or refused a request; the message names the address and collection
    (a ValueError, like the other one-line errors a command reports)."""


def new_collection_name() -> str:
    """A collection name no other index uses (several indexes may share one server)."""
    return f"picsearch_{secrets.token_hex(8)}"


class MilvusStore:
    """Vectors by image id in the collection ``collection`` at ``uri`` (a server URL or a Lite file path)."""

    kind = "milvus"

    def __init__(
        self, uri: str, collection: str, dim: int, index_type: str = "AUTOINDEX", create: bool = True
    ) -> None:
        from pymilvus import MilvusClient  # imported on use: only milvus indexes need it

        self.uri, self.collection, self.dim, self.index_type = uri, collection, dim, index_type
        try:
            self.client = MilvusClient(uri)
            if create and not self.client.has_collection(collection):
                self._create()
        except Exception as exc:  # pymilvus raises many types (grpc, MilvusException, OSError from Lite)
            raise MilvusStoreError(f"{uri}: Milvus collection {collection!r}: {_reason(exc)}") from None

    def _create(self) -> None:
        from pymilvus import DataType

        schema = self.client.create_schema(auto_id=False)
        schema.add_field("id", DataType.VARCHAR, is_primary=True, max_length=ID_LENGTH)
        schema.add_field("vector", DataType.FLOAT_VECTOR, dim=self.dim)
        params = self.client.prepare_index_params()
        params.add_index("vector", index_type=self.index_type, metric_type="IP")
        self.client.create_collection(self.collection, schema=schema, index_params=params, consistency_level="Strong")

    def __len__(self) -> int:
        rows = self._call("count", self.client.query, self.collection, filter="", output_fields=["count(*)"])
        return int(rows[0]["count(*)"])

    def held_ids(self) -> np.ndarray:
        iterator = self._call("list", self.client.query_iterator, self.collection, batch_size=QUERY_BATCH,
                              output_fields=["id"])
        ids: list[str] = []
        while batch := iterator.next():
            ids += [row["id"] for row in batch]
        iterator.close()
        return np.asarray(ids, dtype=str)

    def upsert(self, ids: Sequence[str], vectors: np.ndarray) -> None:
        vectors = np.asarray(vectors, dtype=np.float32)
        rows = [{"id": i, "vector": v} for i, v in zip(ids, vectors)]
        if rows:
            self._call("upsert", self.client.upsert, self.collection, rows)

    def remove(self, ids: Sequence[str]) -> None:
        if len(ids):
            self._call("delete", self.client.delete, self.collection, ids=list(ids))

    def search(self, query_vectors: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
        queries = np.atleast_2d(np.asarray(query_vectors, dtype=np.float32))
        found = self._call("search", self.client.search, self.collection, data=list(queries),
                           limit=min(k, MAX_TOP_K), output_fields=[], consistency_level="Strong")
        width = min((len(hits) for hits in found), default=0)
        ids = np.array([[hit["id"] for hit in hits[:width]] for hits in found], dtype=str).reshape(len(queries), width)
        sims = np.array([[hit["distance"] for hit in hits[:width]] for hits in found], dtype=np.float32)
        return ids, sims.reshape(len(queries), width)

    def save(self, folder: Path) -> None:
        """Nothing to write beside the index: the collection is Milvus's (flushed so a restart keeps it)."""
        self._call("flush", self.client.flush, self.collection)

    def drop(self) -> None:
        """Delete the collection (an index moved to another store)."""
        self._call("drop", self.client.drop_collection, self.collection)

    def _call(self, what: str, method, *args, **kwargs):
        try:
            return method(*args, **kwargs)
        except Exception as exc:  # see __init__
            raise MilvusStoreError(f"{self.uri}: Milvus {what} on {self.collection!r} failed: {_reason(exc)}") from None


def _reason(exc: BaseException) -> str:
    """The first line of a pymilvus error, without its class noise."""
    text = str(getattr(exc, "message", "") or exc).strip().splitlines()
    return text[0] if text else type(exc).__name__
