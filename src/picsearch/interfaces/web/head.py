"""HEAD wherever GET works: an ASGI middleware that runs the GET and sends only its status and headers.

FastAPI routes answer only the methods they declare, so a `@router.get` route answers HEAD with 405
(HTTP requires servers to support HEAD wherever GET works: RFC 9110, section 9.3.2). Wrapping the
app keeps every route, present and future, covered without listing HEAD on each one.
"""

from __future__ import annotations

from starlette.types import ASGIApp, Message, Receive, Scope, Send

_BODY = ("http.response.body", "http.response.pathsend")


class HeadAsGet:
    """Answer a HEAD request as the same GET would, with the same headers and no body."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or scope["method"] != "HEAD":
            await self.app(scope, receive, send)
            return

        async def headers_only(message: Message) -> None:
            if message["type"] in _BODY:
                if message.get("more_body", False):
                    return
                message = {"type": "http.response.body", "body": b"", "more_body": False}
            await send(message)

        await self.app({**scope, "method": "GET"}, receive, headers_only)
