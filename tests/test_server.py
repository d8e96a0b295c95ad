"""The served app's connection limits: a request head that never finishes is cut off; complete ones are answered."""

from __future__ import annotations

import socket
import threading
import time
from pathlib import Path

import pytest
import uvicorn

from picsearch.interfaces.web import create_app
from picsearch.interfaces.web.server import HeadTimeoutProtocol, server_config
from web_gallery import WordSearcher, write_gallery


@pytest.fixture
def served(tmp_path: Path, monkeypatch):
    monkeypatch.setattr(HeadTimeoutProtocol, "head_timeout", 0.5)
    app = create_app(WordSearcher(write_gallery(tmp_path / "gallery")), tmp_path / "thumbs")
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    server = uvicorn.Server(server_config(app, "127.0.0.1", port))
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 30
    while not server.started and time.monotonic() < deadline:
        time.sleep(0.05)
    yield port
    server.should_exit = True
    thread.join(timeout=10)


def _exchange(port: int, data: bytes) -> bytes:
    """Send ``data``, then read until the server closes the connection (or 10 s pass)."""
    with socket.create_connection(("127.0.0.1", port), timeout=10) as conn:
        conn.sendall(data)
        chunks = []
        while chunk := conn.recv(65536):
            chunks.append(chunk)
        return b"".join(chunks)


def test_a_half_sent_request_head_is_closed_and_a_whole_one_answered(served: int) -> None:
    start = time.monotonic()
    assert _exchange(served, b"GET /healthz HTTP/1.1\r\nHost: test\r\nX-Slow: ") == b""  # closed, nothing sent
    assert time.monotonic() - start < 8  # cut at the head timeout, not left open
    answer = _exchange(served, b"GET /healthz HTTP/1.1\r\nHost: test\r\nConnection: close\r\n\r\n")
    assert answer.startswith(b"HTTP/1.1 200") and b'"images":4' in answer


def test_a_silent_connection_is_closed(served: int) -> None:
    assert _exchange(served, b"") == b""


def test_a_request_head_growing_beyond_the_size_limit_is_refused(served: int) -> None:
    answer = _exchange(served, b"GET /healthz HTTP/1.1\r\nHost: test\r\nX-Big: " + b"a" * 40_000)
    assert answer.startswith(b"HTTP/1.1 400")
