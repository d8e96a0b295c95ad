"""Answer text queries over an index: policy -> retrieve by joint similarity -> rerank -> child filter -> file check."""

from __future__ import annotations

import logging
import threading
from dataclasses import dataclass, field
from pathlib import Path
from typing import Sequence

import numpy as np

from picsearch.data.files import CheckedFile, UncheckedFileError
from picsearch.encoders import TextEncoder
from picsearch.encoders.memo import CachedTextEncoder
from picsearch.index import (
    GalleryIndex,
    NumpyStore,
    VectorStore,
    model_fingerprint,
    read_manifest,
    reconcile,
    vector_lookup,
)
from picsearch.index.review import Moderation, ReviewLog
from picsearch.labels import MINOR_ASPECTS
from picsearch.models import RelevanceBundle
from picsearch.models.artifacts import METRICS
from picsearch.policy import DISCLAIMER, check
from picsearch.storage import load_json

CANDIDATES = 100  # images reranked per query; retrieval recall@100 bounds what reranking can fix
WEAK_NOTE = f"no good match: every score is under {MINOR_ASPECTS:.2f}, so at most minor aspects match"
"""What the CLI and the demo's pages say of a :attr:`SearchResult.weak` answer."""
log = logging.getLogger(__name__)


def is_weak(scores: Sequence[float]) -> bool:
    """True when ``scores`` (best first) has a first and it is under :data:`~picsearch.labels.MINOR_ASPECTS`: by
    the model, experts would say the text describes none of the images, or minor aspects at most."""
    return len(scores) > 0 and bool(scores[0] < MINOR_ASPECTS)


@dataclass(frozen=True)
class Hit:
    """One returned image: its index id, absolute path, and relevance score in [0, 1]."""

    id: str
    path: Path
    score: float


@dataclass(frozen=True)
class SearchResult:
    """The answer to one query; a blocked query carries the disclaimer and no hits."""

    query: str
    blocked: bool
    disclaimer: str | None = None
    matched: list[str] = field(default_factory=list)
    hits: list[Hit] = field(default_factory=list)

    @property
    def weak(self) -> bool:
        """:func:`is_weak` of the hits' scores: even the best hit matches poorly."""
        return is_weak([hit.score for hit in self.hits])

    def to_json(self) -> dict:
        """``{"query", "blocked", "disclaimer"?, "weak"?, "results": [{"id", "path", "score"}]}``."""
        data: dict = {"query": self.query, "blocked": self.blocked}
        if self.blocked:
            data["disclaimer"] = self.disclaimer
        else:
            data["weak"] = self.weak
        data["results"] = [{"id": h.id, "path": str(h.path), "score": round(h.score, 4)} for h in self.hits]
        return data


@dataclass(frozen=True)
class Ranking:
    """Index rows best first with their rerank scores (``scores`` only covers the reranked head)."""

    rows: np.ndarray
    scores: np.ndarray


def check_request(query: str, k: int, min_score: float) -> None:
    """Reject an empty query, ``k < 1`` or ``min_score`` outside [0, 1] with a message naming the field."""
    if not query or not query.strip():
        raise ValueError("query: must not be empty")
    if k < 1:
        raise ValueError(f"k: must be at least 1, got {k}")
    if not 0.0 <= min_score <= 1.0:
        raise ValueError(f"min_score: must lie in [0, 1], got {min_score}")


def validated_candidates(model_dir: Path) -> int:
    """How many candidates the training run's retrieval CV reranked, else :data:`CANDIDATES`."""
    metrics = Path(model_dir) / METRICS
    if not metrics.is_file():
        return CANDIDATES
    report = load_json(metrics)  # errors name the file and line
    try:
        return int(report.get("retrieval_cv", {}).get("candidates", CANDIDATES))
    except (AttributeError, TypeError, ValueError):
        raise ValueError(f"{metrics}: field retrieval_cv.candidates: expected a number of images") from None


class Searcher:
    """Loads the index and the models once and answers queries.

    Safety is structural: :meth:`search` / :meth:`search_many` are the only public ways to rank; they check the
    policy first and rank only visible images. Hidden are the child detector's flags with the operators' review
    decisions applied (:class:`picsearch.index.review.Moderation`); the review log is re-read when it changes, so
    a clearance or a new flag applies to the next query, without re-indexing. The vector store (exact, FAISS or
    Milvus: :mod:`picsearch.index.stores`) holds the visible images only: when a decision changes them, the
    store is brought in line before the next query, so retrieval cannot return a hidden image; every ranking
    drops hidden rows once more, and ids the index no longer has. :meth:`_rank_unfiltered` (every indexed
    image, exact, no policy) exists for ``search.evaluate`` alone.

    Only checked content leaves it: a hit, :meth:`path_of` and :meth:`checked_file` require the file
    to hold the bytes the index checked (same size and times, else the same hash) at a real path inside
    the gallery. A photo changed since indexing is left out of results (the next one takes its place)
    and refused by id until ``picsearch index`` checks it again.
    """

    def __init__(
        self,
        index: GalleryIndex,
        bundle: RelevanceBundle,
        text_encoder: TextEncoder,
        candidates: int = CANDIDATES,
        reviews: ReviewLog | None = None,
    ) -> None:
        bundle.check_encoders(index.meta.get("image_encoder_id", ""), text_encoder.id)
        self.index = index
        self.bundle = bundle
        self.text_encoder = text_encoder
        self.candidates = candidates
        self._rows = index.rows()
        self.moderation = Moderation(index, reviews)
        self._lock = threading.Lock()  # one thread at a time syncs or searches the store
        self._store, self._held = index.open_store()
        self._vectors_of = vector_lookup(self._rows, index.joint)
        self._synced: np.ndarray | None = None
        self._sync()

    def _sync(self) -> None:
        """Bring the store in line with what is visible now (a no-op until a logged decision changes it)."""
        self.moderation.refresh()
        decisions = self.moderation.decisions
        if self._synced is decisions:
            return
        with self._lock:
            visible = ~self.moderation.hidden()
            ids = np.asarray(self.index.ids, dtype=str)
            reconcile(self._store, ids[visible].tolist(), self._vectors_of, held=ids[self._held].tolist())
            self._held, self._synced = visible, decisions

    @classmethod
    def open(
        cls, index_dir: str | Path, model_dir: str | Path | None = None, candidates: int | None = None,
        query_cache: int = 0,
    ) -> "Searcher":
        """Open the index at ``index_dir`` with the models it was built with (or ``model_dir``).

        ``candidates`` defaults to the number the training run's retrieval CV reranked
        (``metrics.json``), else :data:`CANDIDATES`. ``query_cache`` > 0 remembers the vectors of that many
        recent queries (:class:`~picsearch.encoders.memo.CachedTextEncoder`).
        """
        index_dir = Path(index_dir)
        manifest = read_manifest(index_dir)
        model_dir = Path(model_dir or manifest["model"])
        fingerprint = model_fingerprint(model_dir)
        if fingerprint != manifest.get("model_fingerprint"):
            raise ValueError(
                f"{index_dir}: index was built with another model than {model_dir}; "
                f"rebuild it: picsearch index GALLERY --model {model_dir} --out {index_dir}"
            )
        bundle = RelevanceBundle.load(model_dir)
        candidates = candidates or validated_candidates(model_dir)
        index = GalleryIndex.load(index_dir)
        encoder = bundle.query_encoder()
        encoder = CachedTextEncoder(encoder, query_cache) if query_cache else encoder
        return cls(index, bundle, encoder, candidates, ReviewLog.of_index(index_dir))

    def __len__(self) -> int:
        """Number of images a query can return (indexed images minus hidden ones)."""
        self._sync()
        return int(self._held.sum())

    def path_of(self, image_id: str) -> Path:
        """Real path of a returnable image; KeyError for unknown or hidden ids, and
        :class:`UncheckedFileError` (a KeyError) for a file changed since indexing or leaving the gallery."""
        return self.checked_file(image_id).path

    def checked_file(self, image_id: str) -> CheckedFile:
        """The returnable image's checked file: real path and the identity (hash) the index recorded."""
        self._sync()
        row = self._rows.get(image_id)
        if row is None or self.moderation.hidden(np.array([row]))[0]:
            raise KeyError(f"unknown image id {image_id!r}")
        return self.index.checked_file(row)

    def search(self, query: str, k: int = 5, min_score: float = 0.0) -> SearchResult:
        """Best ``k`` images for ``query`` with score >= ``min_score``, or the disclaimer."""
        return self.search_many([query], k, min_score)[0]

    def search_many(self, queries: Sequence[str], k: int = 5, min_score: float = 0.0) -> list[SearchResult]:
        """Answer several queries with one text-encoder and one reranker call."""
        for query in queries:
            check_request(query, k, min_score)
        decisions = [check(query) for query in queries]
        allowed = [i for i, decision in enumerate(decisions) if not decision.blocked]
        rankings: dict[int, Ranking] = {}
        if allowed:
            n = max(k, self.candidates)
            texts = [queries[i] for i in allowed]
            ranked = self._rank(self.text_encoder.encode(texts), n, n, self.bundle.mapped_queries(texts))
            rankings = dict(zip(allowed, ranked))
        results = []
        for i, decision in enumerate(decisions):
            if decision.blocked:
                results.append(SearchResult(queries[i], True, DISCLAIMER, list(decision.matched)))
            else:
                results.append(SearchResult(queries[i], False, hits=self._hits(rankings[i], k, min_score)))
        return results

    def _rank(self, text_feats: np.ndarray, n: int, n_rerank: int, mapped: np.ndarray | None = None) -> list[Ranking]:
        """The ``n`` visible images nearest each text, the first ``n_rerank`` reranked by score (``mapped``: the
        texts that came through the text map, :meth:`RelevanceBundle.mapped_queries`); hidden rows are dropped
        (the store leaves them out; this also honours flags set after opening)."""
        self._sync()
        with self._lock:
            rows = self._retrieve(text_feats, self._store, n)
        rankings = self._rerank(rows, text_feats, n_rerank, mapped)
        return [self._without_flagged(ranking) for ranking in rankings]

    def _rank_unfiltered(
        self, text_feats: np.ndarray, mapped: np.ndarray | None = None
    ) -> tuple[np.ndarray, list[Ranking]]:
        """For evaluation only: every indexed image, child-flagged ones included, in joint-space order, and the
        same rankings with the first ``candidates`` reranked. Never returned to a user."""
        everything = NumpyStore(np.asarray(self.index.ids, dtype=str), self.index.joint)
        rows = self._retrieve(text_feats, everything, len(self.index))
        return rows, self._rerank(rows, text_feats, self.candidates, mapped)

    def _without_flagged(self, ranking: Ranking) -> Ranking:
        keep = ~self.moderation.hidden(ranking.rows)
        return Ranking(ranking.rows[keep], ranking.scores[keep[: len(ranking.scores)]])

    def _retrieve(self, text_feats: np.ndarray, store: VectorStore, n: int) -> np.ndarray:
        """Index rows (m, n') of the ``n`` images of ``store`` nearest each text in the joint space, nearest first.

        Ids the index has no row for (a store written by an update that never finished) are dropped; every
        query keeps as many rows as the one that kept the fewest."""
        if not len(text_feats):
            return np.zeros((0, 0), dtype=np.int64)
        ids, _ = store.search(self.bundle.joint_text(text_feats), n)
        rows = [[self._rows[i] for i in row if i in self._rows] for row in ids.tolist()]
        width = min(len(row) for row in rows)
        return np.array([row[:width] for row in rows], dtype=np.int64).reshape(len(rows), width)

    def _rerank(self, rows: np.ndarray, text_feats: np.ndarray, n: int, mapped: np.ndarray | None) -> list[Ranking]:
        """Score the first ``n`` rows of each query with the relevance model, best first; the other rows follow
        in retrieval order."""
        n_rerank = min(n, rows.shape[1])
        head_rows = rows[:, :n_rerank]
        if not head_rows.size:  # nothing visible to score (e.g. every photo hidden)
            return [Ranking(row, np.zeros(0, dtype=np.float32)) for row in rows]
        texts = np.repeat(text_feats, n_rerank, axis=0)
        rows_mapped = None if mapped is None else np.repeat(mapped, n_rerank)
        scores = self.index.rerank_scores(self.bundle, head_rows.ravel(), texts, rows_mapped).reshape(head_rows.shape)
        order = np.argsort(-scores, axis=1, kind="stable")
        return [
            Ranking(np.concatenate([head_rows[q, order[q]], rows[q, n_rerank:]]), scores[q, order[q]])
            for q in range(len(rows))
        ]

    def _hits(self, ranking: Ranking, k: int, min_score: float) -> list[Hit]:
        hits = []
        for row, score in zip(ranking.rows, ranking.scores):
            if len(hits) == k or score < min_score:
                break
            try:
                checked = self.index.checked_file(row)
            except UncheckedFileError as exc:
                log.warning("left out of the results: %s", exc)
                continue
            hits.append(Hit(self.index.ids[row], checked.path, float(score)))
        return hits
