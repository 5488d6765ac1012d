"""uvicorn's httptools protocol with the limits a server facing clients needs.

uvicorn bounds neither the size of a request's head (with httptools a 40 MiB
header was accepted) nor the time a client may take to send it (a slowloris
connection stayed open past 40 s). `sdq api` serves with this subclass, which
closes a connection whose request line and headers pass SDQ_MAX_HEADER_BYTES
(431) or are not complete SDQ_HEADER_TIMEOUT_S after the connection opened or
its previous response ended (408). Only the head is bounded here; the body is
the app's (FastAPI's max_body_size), and connection counts uvicorn's `limit_concurrency`.
"""

from __future__ import annotations

import asyncio
import os
from typing import Any, ClassVar

from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol

from api.settings import ApiSettings

_CLOSE = b"connection: close\r\ncontent-length: 0\r\n\r\n"
HEAD_TOO_LARGE = b"HTTP/1.1 431 Request Header Fields Too Large\r\n" + _CLOSE
HEAD_TOO_SLOW = b"HTTP/1.1 408 Request Timeout\r\n" + _CLOSE


def _default(field: str) -> Any:
    return ApiSettings.model_fields[field].default


def _env_int(name: str, field: str) -> int:
    return int(os.environ.get(name) or _default(field))


def _env_float(name: str, field: str) -> float:
    return float(os.environ.get(name) or _default(field))


class BoundedHttpToolsProtocol(HttpToolsProtocol):
    """uvicorn's `http=` class. Its limits are the process's settings: `configure` sets
    them in `sdq api`, and each worker process of `--workers N` (which imports this
    class anew) reads them from the SDQ_* environment it inherited."""

    max_head_bytes: ClassVar[int] = _env_int("SDQ_MAX_HEADER_BYTES", "max_header_bytes")
    head_timeout_s: ClassVar[float] = _env_float("SDQ_HEADER_TIMEOUT_S", "header_timeout_s")

    @classmethod
    def configure(cls, max_head_bytes: int, head_timeout_s: float) -> None:
        cls.max_head_bytes, cls.head_timeout_s = max_head_bytes, head_timeout_s

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._head_bytes = 0
        self._tail = b""  # the last bytes seen, for a blank line split between packets
        self._in_head = True
        self._head_timer: asyncio.TimerHandle | None = None

    def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
        super().connection_made(transport)
        self._await_head()

    def connection_lost(self, exc: Exception | None) -> None:
        self._stop_timer()
        super().connection_lost(exc)

    def data_received(self, data: bytes) -> None:
        if self._in_head:
            # Count up to the blank line that ends the head: a body sent in the
            # same packet is not the head's (SDQ_MAX_BODY_BYTES bounds it).
            end = (self._tail + data).find(b"\r\n\r\n")
            self._head_bytes += len(data) if end < 0 else end + 4 - len(self._tail)
            self._tail = (self._tail + data)[-3:]
            if self._head_bytes > self.max_head_bytes:
                self._refuse(HEAD_TOO_LARGE)
                return
        super().data_received(data)

    def on_headers_complete(self) -> None:
        self._in_head = False
        self._stop_timer()
        super().on_headers_complete()

    def on_response_complete(self) -> None:
        super().on_response_complete()
        if not self.transport.is_closing():
            self._await_head()

    def _await_head(self) -> None:
        self._in_head, self._head_bytes, self._tail = True, 0, b""
        self._stop_timer()
        self._head_timer = self.loop.call_later(self.head_timeout_s, self._refuse, HEAD_TOO_SLOW)

    def _stop_timer(self) -> None:
        if self._head_timer is not None:
            self._head_timer.cancel()
            self._head_timer = None

    def _refuse(self, answer: bytes) -> None:
        self._stop_timer()
        if not self.transport.is_closing():
            self.transport.write(answer)
            self.transport.close()
