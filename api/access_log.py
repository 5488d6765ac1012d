"""An access log that never writes a secret.

uvicorn's own access log prints the raw query string (and so `secret=`), so it
stays off; this middleware logs the same facts with secrets redacted.
"""

from __future__ import annotations

import logging
import re
import time

from starlette.types import ASGIApp, Message, Receive, Scope, Send

log = logging.getLogger("sdq.access")

_SECRET_PARAM = re.compile(rb"(^|&)(secret|captcha)=[^&]*", re.IGNORECASE)


def redact_query(query: bytes) -> str:
    return _SECRET_PARAM.sub(rb"\1\2=***", query).decode("latin-1")


class AccessLog:
    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        started = time.perf_counter()
        status = 500

        async def send_and_note(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
            await send(message)

        try:
            await self.app(scope, receive, send_and_note)
        finally:
            query = redact_query(scope["query_string"])
            client = scope["client"][0] if scope.get("client") else "-"
            log.info(
                '%s "%s %s%s" %d %.1fms',
                client,
                scope["method"],
                scope["path"],
                f"?{query}" if query else "",
                status,
                (time.perf_counter() - started) * 1000,
            )
