"""bench.web_load: clients load back to back, the health probe paces itself."""

from __future__ import annotations

import asyncio
import time

import httpx

from picsearch.bench import web_load


def _requests_in(seconds: float, pause: float) -> int:
    calls = []

    def answer(request: httpx.Request) -> httpx.Response:
        calls.append(request.url.path)
        return httpx.Response(200, text="ok")

    async def run() -> web_load.Phase:
        phase = web_load.Phase("probe", 1)
        async with httpx.AsyncClient(base_url="http://test", transport=httpx.MockTransport(answer)) as http:
            await web_load._client(http, lambda: "/healthz", time.perf_counter() + seconds, phase, pause)
        return phase

    phase = asyncio.run(run())
    assert len(phase.latencies) == len(calls) and not phase.errors
    return len(calls)


def test_the_health_probe_waits_between_requests_and_a_load_does_not() -> None:
    assert _requests_in(0.3, pause=0.1) <= 4  # sleeps 0.1 s before each request
    assert _requests_in(0.3, pause=0.0) > 20
    assert web_load.PROBE_PAUSE > 0
