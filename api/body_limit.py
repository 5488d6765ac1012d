"""A cap on request bodies, for every route of the app (SDQ_MAX_BODY_BYTES).

Without it a replica facing clients directly read a 100 MiB JSON body whole
(RSS 68 -> 376 MB). The cap is checked where the body is read: a declared
Content-Length over the cap fails the first read, and a body that grows past it
(chunked, or lying about its length) fails the read that crosses it. The route
answers in its surface's shape (BodyTooLarge is in api/errors.py's tables: 413).
Routes that never read a body (the legacy paths) never pay for it.
"""

from __future__ import annotations

from starlette.types import ASGIApp, Message, Receive, Scope, Send

from api.errors import BodyTooLarge


class BodyLimit:
    def __init__(self, app: ASGIApp, max_bytes: int) -> None:
        self.app = app
        self.max_bytes = max_bytes

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        declared = _content_length(scope)
        limit = self.max_bytes
        seen = 0

        async def bounded_receive() -> Message:
            nonlocal seen
            if declared is not None and declared > limit:
                raise BodyTooLarge(limit)
            message = await receive()
            if message["type"] == "http.request":
                seen += len(message.get("body", b""))
                if seen > limit:
                    raise BodyTooLarge(limit)
            return message

        await self.app(scope, bounded_receive, send)


def _content_length(scope: Scope) -> int | None:
    for name, value in scope["headers"]:
        if name == b"content-length":
            return int(value) if value.isdigit() and len(value) < 19 else None
    return None
