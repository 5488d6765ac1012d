"""A small pooled HTTP/1.1 client for one endpoint: hCaptcha's siteverify.

httpx costs about 2 ms of CPU per call on these machines (measured: more than
the whole rest of /addJob, so /addJob could never reach 4x the original's
rate with it). This client does the one thing needed: POST a form over
kept-alive connections (TLS for https) and read the answer with httptools,
uvicorn's C parser, which handles Content-Length and chunked bodies.
"""

from __future__ import annotations

import asyncio
import ssl
from collections.abc import Mapping
from dataclasses import dataclass
from types import TracebackType
from urllib.parse import urlencode, urlsplit

import httptools

MAX_BODY_BYTES = 1 << 20
_READ_CHUNK = 65536


class SiteverifyError(Exception):
    """The answer could not be read: connection closed early, bad HTTP, too big."""


@dataclass(frozen=True, slots=True)
class Answer:
    status: int
    body: bytes


class _Response:
    """httptools callbacks: collects one response."""

    def __init__(self) -> None:
        self.parser = httptools.HttpResponseParser(self)
        self.parts: list[bytes] = []
        self.size = 0
        self.keep_alive = False
        self.complete = False

    def on_headers_complete(self) -> None:
        self.keep_alive = self.parser.should_keep_alive()  # reset once the message ends

    def on_body(self, body: bytes) -> None:
        self.size += len(body)
        if self.size > MAX_BODY_BYTES:
            raise SiteverifyError("answer too large")
        self.parts.append(body)

    def on_message_complete(self) -> None:
        self.complete = True


class _Connection:
    def __init__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.reader = reader
        self.writer = writer

    def usable(self) -> bool:
        """False once either side closed it (a kept-alive connection the server dropped)."""
        return not self.writer.is_closing() and not self.reader.at_eof()

    async def exchange(self, request: bytes) -> tuple[Answer, bool]:
        """Sends one request; returns the answer and whether the connection may be reused."""
        self.writer.write(request)
        response = _Response()
        parser = response.parser
        while not response.complete:
            data = await self.reader.read(_READ_CHUNK)
            if not data:
                raise SiteverifyError("connection closed before the answer was complete")
            try:
                parser.feed_data(data)
            except httptools.HttpParserError as exc:
                raise SiteverifyError(f"bad HTTP answer: {exc}") from exc
        answer = Answer(parser.get_status_code(), b"".join(response.parts))
        return answer, response.keep_alive

    def close(self) -> None:
        self.writer.close()


class SiteverifyClient:
    """POSTs forms to one URL over a pool of kept-alive connections.

    `timeout_s` bounds each whole call (connect, send, answer). At most
    `max_connections` calls run at once; the rest wait inside the timeout.
    """

    def __init__(self, url: str, timeout_s: float, max_connections: int = 100) -> None:
        parts = urlsplit(url)
        if parts.scheme not in ("http", "https") or not parts.hostname:
            raise ValueError(f"the hCaptcha verify URL must be http(s)://host/...: {url!r}")
        self._host = parts.hostname
        self._port = parts.port or (443 if parts.scheme == "https" else 80)
        self._ssl = ssl.create_default_context() if parts.scheme == "https" else None
        self._timeout_s = timeout_s
        self._slots = asyncio.Semaphore(max_connections)
        self._idle: list[_Connection] = []
        target = (parts.path or "/") + (f"?{parts.query}" if parts.query else "")
        self._head = (
            f"POST {target} HTTP/1.1\r\nHost: {parts.netloc.rpartition('@')[2]}\r\n"
            "User-Agent: sdq\r\nAccept: application/json\r\n"
            "Content-Type: application/x-www-form-urlencoded\r\nContent-Length: "
        ).encode("ascii")

    async def post_form(self, form: Mapping[str, str]) -> Answer:
        """One POST. Raises SiteverifyError, OSError or TimeoutError on failure."""
        body = urlencode(form).encode()
        request = b"%s%d\r\n\r\n%s" % (self._head, len(body), body)
        async with asyncio.timeout(self._timeout_s), self._slots:
            connection = self._take_idle() or await self._connect()
            try:
                answer, reusable = await connection.exchange(request)
            except BaseException:
                connection.close()
                raise
        if reusable:
            self._idle.append(connection)
        else:
            connection.close()
        return answer

    def _take_idle(self) -> _Connection | None:
        while self._idle:
            connection = self._idle.pop()
            if connection.usable():
                return connection
            connection.close()
        return None

    async def _connect(self) -> _Connection:
        reader, writer = await asyncio.open_connection(
            self._host,
            self._port,
            ssl=self._ssl,
            server_hostname=self._host if self._ssl else None,
        )
        return _Connection(reader, writer)

    async def aclose(self) -> None:
        idle, self._idle = self._idle, []
        for connection in idle:
            connection.close()

    async def __aenter__(self) -> SiteverifyClient:
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.aclose()
