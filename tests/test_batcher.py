"""Micro-batched searches in the web app: own answers, one encoder call per batch, 503 on overload,
health checks answered while searches wait."""

from __future__ import annotations

import asyncio
import threading
from pathlib import Path

import httpx
import pytest

from picsearch.interfaces.web import create_app
from picsearch.interfaces.web.batcher import Overloaded, SearchBatcher
from web_gallery import WordSearcher, write_gallery

QUERIES = ["red ball", "blue sea", "green grass field", "yellow sun over the sea", "a little girl", "blue sky"]


@pytest.fixture
def searcher(tmp_path: Path) -> WordSearcher:
    return WordSearcher(write_gallery(tmp_path / "gallery"))


class GatedSearcher(WordSearcher):
    """Blocks every search until ``gate`` opens, like a searcher busy with a slow model."""

    def __init__(self, folder: Path) -> None:
        super().__init__(folder)
        self.gate = threading.Event()
        self.started = threading.Event()

    def search_many(self, queries, k=5, min_score=0.0):
        self.started.set()
        if not self.gate.wait(timeout=30):
            raise TimeoutError("the test never opened the gate")
        return super().search_many(queries, k, min_score)


def _client(app) -> httpx.AsyncClient:
    return httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://test")


def test_concurrent_requests_share_one_batch_and_each_gets_its_own_answer(searcher, tmp_path: Path) -> None:
    app = create_app(searcher, tmp_path / "thumbs", SearchBatcher(searcher, max_batch=16, max_wait=0.2))
    single = {query: searcher.search(query, k=2) for query in QUERIES}
    searcher.batches.clear()

    async def run() -> list[httpx.Response]:
        async with _client(app) as client:
            return await asyncio.gather(*(client.get("/api/search", params={"q": q, "k": 2}) for q in QUERIES))

    responses = asyncio.run(run())
    assert len(searcher.batches) == 1 and sorted(searcher.batches[0]) == sorted(QUERIES)
    for query, response in zip(QUERIES, responses):
        body = response.json()
        assert response.status_code == 200 and body["query"] == query
        assert body["blocked"] == single[query].blocked
        assert [r["id"] for r in body["results"]] == [hit.id for hit in single[query].hits]


class StrictSearcher(WordSearcher):
    """Refuses a blank query, in a batch as alone (as `Searcher` does)."""

    def search(self, query, k=5, min_score=0.0):
        if not query.strip():
            raise ValueError("query: must not be empty")
        return super().search(query, k, min_score)


def test_a_batch_honours_each_requests_k_and_min_score_and_isolates_a_failure(tmp_path: Path) -> None:
    batcher = SearchBatcher(StrictSearcher(write_gallery(tmp_path / "gallery")), max_wait=0.2)
    asks = [("blue sea", 1, 0.0), ("blue sea", 4, 0.0), ("blue sea", 4, 0.6), ("   ", 3, 0.0), ("red ball", 3, 0.0)]

    async def run() -> list:
        return await asyncio.gather(*(batcher.search(*ask) for ask in asks), return_exceptions=True)

    one, four, strong, empty, red = asyncio.run(run())
    assert len(one.hits) == 1 and len(four.hits) == 4 and [h.id for h in one.hits] == [four.hits[0].id]
    assert strong.hits and all(hit.score >= 0.6 for hit in strong.hits) and len(strong.hits) < 4
    assert isinstance(empty, ValueError) and red.hits[0].id == "red-ball.jpg"  # same group as the failure


def test_overload_is_answered_503_with_retry_after_and_health_stays_up(tmp_path: Path) -> None:
    searcher = GatedSearcher(write_gallery(tmp_path / "gallery"))
    app = create_app(searcher, tmp_path / "thumbs", SearchBatcher(searcher, max_batch=1, max_wait=0, max_queue=2))

    async def run() -> tuple[list[httpx.Response], httpx.Response, list[httpx.Response]]:
        async with _client(app) as client:
            first = asyncio.create_task(client.get("/api/search", params={"q": "red ball"}))
            await asyncio.to_thread(searcher.started.wait, 10)  # the worker is busy with the first search
            queued = [asyncio.create_task(client.get("/api/search", params={"q": q})) for q in ("blue sea", "sun")]
            await asyncio.sleep(0.05)
            refused = await client.get("/api/search", params={"q": "green field"})
            health = await client.get("/healthz")  # answered while every search still waits
            still_waiting = not first.done() and not any(task.done() for task in queued)
            searcher.gate.set()
            answered = await asyncio.gather(first, *queued)
            assert still_waiting
            return answered, health, [refused]

    answered, health, (refused,) = asyncio.run(run())
    assert refused.status_code == 503 and refused.headers["retry-after"] == "1"
    assert "retry later" in refused.json()["detail"]
    assert health.status_code == 200 and health.json()["images"] == 4
    assert [r.status_code for r in answered] == [200, 200, 200]


def test_the_batcher_refuses_beyond_its_queue(searcher) -> None:
    batcher = SearchBatcher(searcher, max_queue=0)
    with pytest.raises(Overloaded):
        asyncio.run(batcher.search("red ball", 1, 0.0))
