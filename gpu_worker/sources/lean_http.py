"""A lean keep-alive HTTP/1.1 client for the HTTP source, built on httptools.

httpx costs 1.3 to 2.5 ms of CPU per request on these machines (measured in
a bench.worker run: more than the API's whole work for that request), which
capped the HTTP transport below RQ's rate. A worker needs far less: short
requests to one server, one at a time (two at most, with a heartbeat), answers
with a Content-Length. This client does just that, as an asyncio Protocol that
feeds bytes straight into uvicorn's C parser (httptools): about a tenth of the
CPU.

- Each request is ONE write (head and body together): two small writes on a
  kept-alive connection can wait ~40 ms for a delayed ACK (FIELD-NOTES.md).
- Connections are kept alive, and not reused once idle for `max_idle_s` (shorter
  than servers' keep-alive timeouts, uvicorn's is 5 s), nor once the server
  has closed them, so a request is never sent into a connection being closed.
- A request cut short (timeout, cancellation, error) closes its connection:
  its state is unknown.
"""

from __future__ import annotations

import asyncio
import ssl
import time
from collections.abc import Mapping
from typing import cast
from urllib.parse import urlsplit

import httptools

from gpu_worker.sources.http_client import HttpUnreachable, Reply, query_string

MAX_BODY_BYTES = 1 << 20
MAX_IDLE_S = 4.0


def _clean(text: str) -> str:
    """Refuses a line break or NUL, which would end or split a header (injection)."""
    if "\r" in text or "\n" in text or "\0" in text:
        raise ValueError("an HTTP request line or header must not hold a line break")
    return text


class _Connection(asyncio.Protocol):
    """One TCP (or TLS) connection; one request in flight at a time."""

    def __init__(self) -> None:
        self.transport: asyncio.Transport | None = None
        self.open = False
        self.idle_since = 0.0
        self._parser = httptools.HttpResponseParser(self)
        self._answer: asyncio.Future[Reply] | None = None
        self._headers: dict[str, str] = {}
        self._body: list[bytes] = []
        self._size = 0
        self._keep_alive = False

    # -- asyncio.Protocol ---------------------------------------------------------

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = cast(asyncio.Transport, transport)  # uvloop's is no subclass
        self.open = True

    def data_received(self, data: bytes) -> None:
        if self._answer is None or self._answer.done():
            self._fail(HttpUnreachable("unexpected data from the server"))
            return
        try:
            self._parser.feed_data(data)
        except httptools.HttpParserUpgrade:
            self._fail(HttpUnreachable("unexpected protocol upgrade"))
        except httptools.HttpParserError as exc:
            self._fail(HttpUnreachable(f"bad HTTP answer: {type(exc).__name__}"))

    def eof_received(self) -> bool:
        self._fail(HttpUnreachable("connection closed before the answer was complete"))
        return False

    def connection_lost(self, exc: Exception | None) -> None:
        self.open = False
        self._fail(HttpUnreachable("connection closed before the answer was complete"))

    # -- httptools callbacks ------------------------------------------------------

    def on_header(self, name: bytes, value: bytes) -> None:
        self._headers[name.decode("latin-1").lower()] = value.decode("latin-1")

    def on_headers_complete(self) -> None:
        self._keep_alive = self._parser.should_keep_alive()

    def on_body(self, body: bytes) -> None:
        self._size += len(body)
        if self._size > MAX_BODY_BYTES:
            self._fail(HttpUnreachable("answer too large"))
            return
        self._body.append(body)

    def on_message_complete(self) -> None:
        answer = self._answer
        if answer is not None and not answer.done():
            status = self._parser.get_status_code()
            answer.set_result(Reply(status, self._headers, b"".join(self._body)))
        if not self._keep_alive:
            self.close()

    # -- use ----------------------------------------------------------------------

    async def exchange(self, request: bytes) -> Reply:
        assert self.transport is not None
        self._answer = asyncio.get_running_loop().create_future()
        self._headers, self._body, self._size = {}, [], 0
        self.transport.write(request)
        try:
            return await self._answer
        finally:
            self._answer = None

    def reusable(self, now: float, max_idle_s: float) -> bool:
        return self.open and self._keep_alive and now - self.idle_since < max_idle_s

    def close(self) -> None:
        self.open = False
        if self.transport is not None:
            self.transport.close()

    def _fail(self, exc: HttpUnreachable) -> None:
        if self._answer is not None and not self._answer.done():
            self._answer.set_exception(exc)
        self.close()


class LeanHttpClient:
    """HttpClient for one server (`base_url`: http(s)://host[:port][/prefix]).

    `timeout_s` bounds each whole request: connect, send, answer. A connection idle
    for `max_idle_s` is closed rather than reused."""

    def __init__(self, base_url: str, timeout_s: float, max_idle_s: float = MAX_IDLE_S) -> None:
        parts = urlsplit(base_url)
        if parts.scheme not in ("http", "https") or not parts.hostname:
            raise ValueError(f"the API URL must be http(s)://host[:port][/path]: {base_url!r}")
        if parts.query or parts.fragment or parts.username or parts.password:
            raise ValueError("the API URL must not hold a query, fragment or credentials")
        self._host = parts.hostname
        self._port = parts.port or (443 if parts.scheme == "https" else 80)
        self._ssl = ssl.create_default_context() if parts.scheme == "https" else None
        self._prefix = parts.path.rstrip("/")
        self._host_header = parts.netloc
        self._timeout_s = timeout_s
        self._max_idle_s = max_idle_s
        self._idle: list[_Connection] = []

    async def request(
        self,
        method: str,
        path: str,
        params: Mapping[str, str],
        headers: Mapping[str, str],
        body: bytes | None = None,
    ) -> Reply:
        message = self._message(method, path, params, headers, body)
        connection: _Connection | None = None
        answered = False
        try:
            async with asyncio.timeout(self._timeout_s):
                connection = self._take_idle() or await self._connect()
                reply = await connection.exchange(message)
                answered = True
        except TimeoutError as exc:
            raise HttpUnreachable("timed out") from exc
        except OSError as exc:
            raise HttpUnreachable(type(exc).__name__) from exc
        finally:
            if connection is not None and not answered:
                connection.close()  # cut short: its state is unknown
        if connection.open:
            connection.idle_since = time.monotonic()
            self._idle.append(connection)
        return reply

    def _message(
        self,
        method: str,
        path: str,
        params: Mapping[str, str],
        headers: Mapping[str, str],
        body: bytes | None,
    ) -> bytes:
        target = self._prefix + path + (f"?{query_string(params)}" if params else "")
        lines = [f"{method} {_clean(target)} HTTP/1.1", f"Host: {self._host_header}"]
        lines += [f"{_clean(name)}: {_clean(value)}" for name, value in headers.items()]
        if body is not None:
            lines += ["Content-Type: application/json", f"Content-Length: {len(body)}"]
        elif method != "GET":
            lines.append("Content-Length: 0")
        lines += ["", ""]
        return "\r\n".join(lines).encode("latin-1") + (body or b"")

    def _take_idle(self) -> _Connection | None:
        now = time.monotonic()
        while self._idle:
            connection = self._idle.pop()
            if connection.reusable(now, self._max_idle_s):
                return connection
            connection.close()
        return None

    async def _connect(self) -> _Connection:
        loop = asyncio.get_running_loop()
        _, connection = await loop.create_connection(
            _Connection,
            self._host,
            self._port,
            ssl=self._ssl,
            server_hostname=self._host if self._ssl else None,
        )
        return connection

    async def aclose(self) -> None:
        idle, self._idle = self._idle, []
        for connection in idle:
            connection.close()
