"""An access log that never writes a secret.

uvicorn's own access log prints the raw query string (and so `secret=`), so it
stays off; this middleware logs the same facts with secrets redacted.
"""

from __future__ import annotations

import logging
import re
import time
from urllib.parse import unquote_to_bytes

from starlette.types import ASGIApp, Receive, Scope, Send

from api.asgi_status import StatusRecorder

log = logging.getLogger("sdq.access")

_SENSITIVE = frozenset({"secret", "captcha"})
_PAIR = re.compile(rb"[^&;]+")


def redact_query(query: bytes) -> str:
    """The query with the value of every secret or captcha pair replaced by ***.

    Keys are compared as the query parser reads them (percent-decoded, `+` as space),
    so `s%65cret=` is caught too, and more widely than it reads them (any case,
    white space ignored, `;` also ends a pair), so nothing used as a secret slips by.
    """
    return _PAIR.sub(_redact_pair, query).decode("latin-1")


def _redact_pair(pair: re.Match[bytes]) -> bytes:
    key, equals, _ = pair.group().partition(b"=")
    if not equals:
        return pair.group()
    name = unquote_to_bytes(key.replace(b"+", b" ")).decode("utf-8", "replace")
    return key + b"=***" if name.strip().lower() in _SENSITIVE else pair.group()


class AccessLog:
    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        started = time.perf_counter()
        recorder = StatusRecorder(send)
        try:
            await self.app(scope, receive, recorder)
        finally:
            query = redact_query(scope["query_string"])
            client = scope["client"][0] if scope.get("client") else "-"
            log.info(
                '%s "%s %s%s" %d %.1fms',
                client,
                scope["method"],
                scope["path"],
                f"?{query}" if query else "",
                recorder.status,
                (time.perf_counter() - started) * 1000,
            )
