"""The interface retrieval goes through, how an index names its store, and how a store is brought in line.

A store holds only the photos a query may return: a photo hidden by the child filter (detector flag or
review decision) is never inserted, and is deleted when it becomes hidden. The index's own ``joint.npy``
keeps every row's vector, so a store can be rebuilt, migrated or brought back in line without embedding.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Iterable, Protocol, Sequence, runtime_checkable

import numpy as np

KINDS = ("exact", "ann", "milvus")
MILVUS_SCHEMES = ("milvus://", "http://", "https://", "tcp://")
SYNC_BATCH = 10_000  # rows per upsert call: bounds one request's size on a remote store


class StoreSpecError(ValueError):
    """A ``--store`` value or a manifest's ``store`` field that names no store; the message says which."""


@runtime_checkable
class VectorStore(Protocol):
    """Maps string ids to L2-normalized vectors and finds the most similar ones (inner product)."""

    kind: str

    def __len__(self) -> int: ...

    def held_ids(self) -> np.ndarray:
        """Every id the store holds (any order)."""

    def upsert(self, ids: Sequence[str], vectors: np.ndarray) -> None:
        """Insert vectors under ``ids``, replacing the vectors of ids already held."""

    def remove(self, ids: Sequence[str]) -> None:
        """Drop the given ids (unknown ids are ignored)."""

    def search(self, query_vectors: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
        """(m, d) queries -> ids (m, k') and similarities (m, k'), best first; k' <= k."""

    def save(self, folder: Path) -> None:
        """Persist what the store keeps beside the index's vectors into the data folder ``folder``."""


@dataclass(frozen=True)
class StoreSpec:
    """Which store an index uses: ``kind`` and, for Milvus, the ``uri`` (a server, or None for the
    embedded Milvus Lite file in the index folder) and the ``collection`` name."""

    kind: str = "exact"
    uri: str | None = None
    collection: str | None = None

    def to_json(self) -> dict:
        return {key: value for key, value in vars(self).items() if value is not None}

    @classmethod
    def from_json(cls, data: object, where: str) -> "StoreSpec":
        """The spec a manifest records; ``"numpy-exact"`` is what indexes before stores were chosen wrote."""
        if data in (None, "numpy-exact"):
            return cls()
        if not isinstance(data, dict) or data.get("kind") not in KINDS:
            raise StoreSpecError(f"{where}: field store: expected one of {', '.join(KINDS)}, found {data!r}")
        return cls(data["kind"], data.get("uri"), data.get("collection"))


def parse_store(value: str | None, milvus_uri: str | None = None) -> StoreSpec | None:
    """``exact``, ``ann``, ``milvus`` (Milvus Lite in the index folder, or ``milvus_uri``) or a server URI
    such as ``milvus://HOST:PORT``; None when neither is given (keep the index's store)."""
    if value is None:
        if milvus_uri:
            raise StoreSpecError("--milvus-uri: needs --store milvus")
        return None
    value = value.strip()
    if value.startswith(MILVUS_SCHEMES):
        milvus_uri, value = value, "milvus"
    if value not in KINDS:
        raise StoreSpecError(f"--store: expected exact, ann, milvus or milvus://HOST:PORT, got {value!r}")
    if milvus_uri and value != "milvus":
        raise StoreSpecError(f"--milvus-uri: only for --store milvus, not {value!r}")
    return StoreSpec(value, server_uri(milvus_uri) if milvus_uri else None)


def server_uri(uri: str) -> str:
    """The address pymilvus connects to: ``milvus://HOST:PORT`` becomes ``http://HOST:PORT``."""
    return "http://" + uri[len("milvus://"):] if uri.startswith("milvus://") else uri


def vector_lookup(rows: dict[str, int], joint: np.ndarray) -> Callable[[Sequence[str]], np.ndarray]:
    """``ids -> their rows of joint`` as float32, for :func:`reconcile` (``rows``: id -> row)."""
    return lambda ids: np.asarray(joint[[rows[i] for i in ids]], dtype=np.float32)


def reconcile(
    store: VectorStore,
    want: Sequence[str],
    vectors_of: Callable[[Sequence[str]], np.ndarray],
    held: Iterable[str] | None = None,
    changed: Iterable[str] = (),
) -> tuple[int, int]:
    """Make ``store`` hold exactly the ids ``want``: delete the others, insert the missing ones and
    re-insert ``changed`` ones. ``held`` (default: ask the store) is what it is known to hold.
    Returns (inserted, deleted). Idempotent, so a run cut short is finished by the next one."""
    held = set(store.held_ids().tolist() if held is None else held)
    wanted, changed = set(want), set(changed)
    gone = sorted(held - wanted)
    new = [i for i in want if i not in held or i in changed]
    if gone:
        store.remove(gone)
    for start in range(0, len(new), SYNC_BATCH):
        batch = new[start : start + SYNC_BATCH]
        store.upsert(batch, vectors_of(batch))
    return len(new), len(gone)
