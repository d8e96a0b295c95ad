"""uvicorn set up for slow and abusive clients: header timeout, keep-alive timeout, size and connection limits.

uvicorn times out idle keep-alive connections but not a request whose head (request line and headers) never
finishes arriving, so :class:`HeadTimeoutProtocol` closes a connection whose head takes longer than
:data:`HEAD_TIMEOUT_S`. The app only answers GET (and HEAD) requests, which have no body to wait for.
"""

from __future__ import annotations

import asyncio

import h11
import uvicorn
from uvicorn.protocols.http.h11_impl import H11Protocol

HEAD_TIMEOUT_S = 10.0
KEEP_ALIVE_S = 5
MAX_HEAD_BYTES = 16 * 1024  # request line + headers; larger heads get 400
MAX_CONNECTIONS = 512  # beyond this uvicorn answers 503 at once


class HeadTimeoutProtocol(H11Protocol):
    """uvicorn's h11 protocol; a request head unfinished after ``head_timeout`` seconds closes the connection."""

    head_timeout = HEAD_TIMEOUT_S
    _head_timer: asyncio.TimerHandle | None = None

    def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
        super().connection_made(transport)
        self._arm()

    def data_received(self, data: bytes) -> None:
        if self._head_timer is None and self.conn.their_state is h11.IDLE:
            self._arm()  # the next request on a kept-alive connection begins
        super().data_received(data)
        if self.conn.their_state is not h11.IDLE:
            self._disarm()

    def connection_lost(self, exc: Exception | None) -> None:
        self._disarm()
        super().connection_lost(exc)

    def _arm(self) -> None:
        self._head_timer = self.loop.call_later(self.head_timeout, self._expire)

    def _disarm(self) -> None:
        if self._head_timer is not None:
            self._head_timer.cancel()
            self._head_timer = None

    def _expire(self) -> None:
        self._head_timer = None
        if self.conn.their_state is h11.IDLE and not self.transport.is_closing():
            self.transport.close()


def server_config(app, host: str, port: int, max_connections: int = MAX_CONNECTIONS) -> uvicorn.Config:
    """The uvicorn configuration `picsearch serve` runs ``app`` with."""
    return uvicorn.Config(
        app, host=host, port=port, log_level="warning", http=HeadTimeoutProtocol, timeout_keep_alive=KEEP_ALIVE_S,
        h11_max_incomplete_event_size=MAX_HEAD_BYTES, limit_concurrency=max_connections,
    )
