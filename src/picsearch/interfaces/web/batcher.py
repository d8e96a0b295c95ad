"""Micro-batching of concurrent searches, off the event loop, behind a bounded queue.

Requests arriving within ``max_wait`` seconds of each other (up to ``max_batch``) are answered by one
``search_many`` call, so the text encoder runs once for all of them. The model work runs on one worker thread
(encoders are not guaranteed thread-safe), never on the event loop, which stays free for health checks and
static files. When ``max_queue`` searches are already waiting, a new one is refused at once
(:class:`Overloaded`, answered 503 with Retry-After) instead of letting every latency grow without bound.
"""

from __future__ import annotations

import asyncio
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any, Protocol, Sequence

MAX_BATCH = 16
MAX_WAIT_S = 0.004
MAX_QUEUE = 64


class BatchSearcher(Protocol):
    """What the batcher needs from `picsearch.search.Searcher`."""

    def search(self, query: str, k: int = ..., min_score: float = ...) -> Any: ...

    def search_many(self, queries: Sequence[str], k: int = ..., min_score: float = ...) -> list[Any]: ...


class Overloaded(RuntimeError):
    """Too many searches are waiting; the client should retry later."""


@dataclass
class _Request:
    query: str
    k: int
    min_score: float
    future: asyncio.Future


class SearchBatcher:
    """Answers ``await search(query, k, min_score)`` calls in micro-batches on one worker thread."""

    def __init__(
        self, searcher: BatchSearcher, max_batch: int = MAX_BATCH, max_wait: float = MAX_WAIT_S,
        max_queue: int = MAX_QUEUE,
    ) -> None:
        self.searcher = searcher
        self.max_batch, self.max_wait, self.max_queue = max_batch, max_wait, max_queue
        self._pending: list[_Request] = []
        self._flusher: asyncio.Task | None = None
        self._worker = ThreadPoolExecutor(max_workers=1, thread_name_prefix="picsearch-search")

    @property
    def waiting(self) -> int:
        """Searches queued and not yet handed to the worker."""
        return len(self._pending)

    async def search(self, query: str, k: int, min_score: float) -> Any:
        """The searcher's answer to this one query; raises :class:`Overloaded` when the queue is full."""
        if len(self._pending) >= self.max_queue:
            raise Overloaded(f"{len(self._pending)} searches are waiting")
        request = _Request(query, k, min_score, asyncio.get_running_loop().create_future())
        self._pending.append(request)
        if self._flusher is None or self._flusher.done():
            self._flusher = asyncio.create_task(self._flush())
        return await request.future

    async def _flush(self) -> None:
        """Hand the queue to the worker batch by batch until it is empty."""
        loop = asyncio.get_running_loop()
        if len(self._pending) < self.max_batch:
            await asyncio.sleep(self.max_wait)  # let concurrent requests join the first batch
        while self._pending:
            batch = [r for r in self._pending[: self.max_batch] if not r.future.done()]  # done: client went away
            del self._pending[: self.max_batch]
            answers = await loop.run_in_executor(self._worker, self._answer, batch)
            for request, answer in zip(batch, answers):
                if request.future.done():
                    continue
                if isinstance(answer, BaseException):
                    request.future.set_exception(answer)
                else:
                    request.future.set_result(answer)

    def _answer(self, batch: list[_Request]) -> list[Any]:
        """On the worker: one ``search_many`` per (k, min_score) group; a group that fails is retried query by
        query, so one bad request never fails the others."""
        groups: dict[tuple[int, float], list[int]] = {}
        for i, request in enumerate(batch):
            groups.setdefault((request.k, request.min_score), []).append(i)
        answers: dict[int, Any] = {}
        for (k, min_score), rows in groups.items():
            try:
                results = self.searcher.search_many([batch[i].query for i in rows], k, min_score)
            except Exception:  # noqa: BLE001 - the per-query retry reports each request's own error
                results = [self._one(batch[i]) for i in rows]
            answers.update(zip(rows, results))
        return [answers[i] for i in range(len(batch))]

    def _one(self, request: _Request) -> Any:
        try:
            return self.searcher.search(request.query, k=request.k, min_score=request.min_score)
        except Exception as exc:  # noqa: BLE001 - handed to the request's own future
            return exc

    def close(self) -> None:
        """Stop the worker thread (after the batch it is running)."""
        self._worker.shutdown(wait=False, cancel_futures=True)
