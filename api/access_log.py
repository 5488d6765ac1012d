"""An access log that never writes a secret, and that a client cannot forge.

uvicorn's own access log prints the raw query string (and so `secret=`), so it
stays off; this middleware logs the same facts with secrets redacted. The path
is logged as the client sent it (still percent-encoded), with any control or
non-ASCII byte escaped: a `%0a` cannot start a forged log line, nor `%1b` an
ANSI escape. Path parameters (`;...`) are never logged: nothing reads them, but
a secret could hide there.
"""

from __future__ import annotations

import logging
import re
import time
from urllib.parse import unquote_to_bytes

from starlette.types import ASGIApp, Receive, Scope, Send

from api.asgi_status import StatusRecorder
from api.throttled_log import printable

log = logging.getLogger("sdq.access")

_SENSITIVE = ("secret", "captcha", "password")
_PAIR = re.compile(rb"[^&;]+")
_LETTERS = re.compile(r"[^a-z]")


def redact_query(query: bytes) -> str:
    """The query with the value of every secret or captcha pair replaced by ***.

    Keys are compared as the query parser reads them (percent-decoded, `+` as space),
    so `s%65cret=` is caught too, and more widely than it reads them (any case, only
    the letters count, `;` also ends a pair), so near misses such as `secret%00=`,
    `secret2=` or `Secret_Key=` are hidden as well.
    """
    return _PAIR.sub(_redact_pair, query).decode("latin-1")


def _redact_pair(pair: re.Match[bytes]) -> bytes:
    key, equals, _ = pair.group().partition(b"=")
    if not equals:
        return pair.group()
    decoded = unquote_to_bytes(key.replace(b"+", b" ")).decode("ascii", "ignore")
    name = _LETTERS.sub("", decoded.lower())
    return key + b"=***" if any(word in name for word in _SENSITIVE) else pair.group()


def logged_path(scope: Scope) -> str:
    """The path as sent (percent-encoded), its `;` parameters cut, escaped for one line."""
    raw = scope.get("raw_path") or scope["path"].encode("utf-8", "surrogateescape")
    path = raw.split(b"?", 1)[0]
    if b";" in path:
        path = path.split(b";", 1)[0] + b";***"
    return printable(path.decode("latin-1"), 2000)


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
            query = printable(redact_query(scope["query_string"]), 4000)
            client = scope["client"][0] if scope.get("client") else "-"
            log.info(
                '%s "%s %s%s" %d %.1fms',
                client,
                scope["method"],
                logged_path(scope),
                f"?{query}" if query else "",
                recorder.status,
                (time.perf_counter() - started) * 1000,
            )
