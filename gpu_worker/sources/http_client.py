"""The HTTP source's client for the API: one pooled httpx.AsyncClient, bounded.

- A small pool; a kept-alive connection idle for KEEPALIVE_S is not reused, which
  is below uvicorn's 5 s keep-alive, so a request is not sent into a connection
  the server is closing. (httpx also drops an idle connection the server closed.)
- `timeout_s` (SDQ_HTTP_TIMEOUT_S) bounds each whole request, and each connect,
  write and read inside it: a server trickling bytes cannot hold a worker.
- Answers are streamed and refused past MAX_ANSWER_BYTES, and compression is not
  offered: a hostile server cannot grow the worker's memory with a body. The
  head is bounded by httpx's parser (h11, 100 KiB in httpcore): endless headers
  are a protocol error. An answer not read to its end closes its connection.
- Proxies come from the environment (HTTP_PROXY, HTTPS_PROXY, ALL_PROXY,
  NO_PROXY), as httpx reads them, unless a test injects a transport.
- Errors name the failure, never the URL: it may carry `?secret=`.
"""

from __future__ import annotations

import asyncio
import json
import string
from collections.abc import Mapping
from dataclasses import dataclass
from urllib.parse import quote

import httpx

MAX_ANSWER_BYTES = 1 << 20  # the API's answers are a few hundred bytes
KEEPALIVE_S = 4.0
MAX_CONNECTIONS = 4  # claim, heartbeat and report overlap at most


class HttpUnreachable(Exception):
    """No usable answer: refused, reset, timed out, closed early, not HTTP, too large.
    The message names the failure only (never a URL, which may carry the secret)."""


@dataclass(frozen=True, slots=True)
class Reply:
    status: int
    headers: Mapping[str, str]  # looked up case-insensitively
    body: bytes

    def json(self) -> object:
        """The decoded JSON body; None if it is not JSON."""
        try:
            return json.loads(self.body)
        except ValueError:
            return None


class ApiClient:
    """Requests to one API (`base_url`: http(s)://host[:port][/prefix]).

    With `transport` (tests: httpx.ASGITransport on the real app) requests go
    there instead of the network, and no proxy is read from the environment."""

    def __init__(
        self,
        base_url: str,
        timeout_s: float,
        transport: httpx.AsyncBaseTransport | None = None,
    ) -> None:
        url = httpx.URL(base_url)
        if url.scheme not in ("http", "https") or not url.host:
            raise ValueError(f"the API URL must be http(s)://host[:port][/path]: {base_url!r}")
        if url.query or url.fragment or url.userinfo:
            raise ValueError("the API URL must not hold a query, fragment or credentials")
        self._timeout_s = timeout_s
        self._client = httpx.AsyncClient(
            base_url=url,
            transport=transport,
            timeout=httpx.Timeout(timeout_s),
            limits=httpx.Limits(
                max_connections=MAX_CONNECTIONS,
                max_keepalive_connections=MAX_CONNECTIONS,
                keepalive_expiry=KEEPALIVE_S,
            ),
            headers={"Accept-Encoding": "identity"},  # a body's size is its size on the wire
            follow_redirects=False,
        )

    async def request(
        self,
        method: str,
        path: str,
        params: Mapping[str, str],
        headers: Mapping[str, str],
        body: bytes | None = None,
    ) -> Reply:
        """One request (`path` below the base URL); a `body` is sent as JSON.

        Raises HttpUnreachable when no usable answer comes back, ValueError for a
        header that would break the request (a line break in the secret)."""
        headers = {name: _clean(value) for name, value in headers.items()}
        if body is not None:
            headers["Content-Type"] = "application/json"
        url = f"{path}?{query_string(params)}" if params else path
        try:
            async with asyncio.timeout(self._timeout_s):
                return await self._exchange(method, url, headers, body)
        except (TimeoutError, httpx.TimeoutException) as exc:
            raise HttpUnreachable("timed out") from exc
        except httpx.TransportError as exc:  # never str(exc): a URL may carry the secret
            raise HttpUnreachable(type(exc).__name__) from exc

    async def _exchange(
        self, method: str, url: str, headers: dict[str, str], body: bytes | None
    ) -> Reply:
        async with self._client.stream(method, url, headers=headers, content=body) as reply:
            declared = reply.headers.get("content-length", "")
            if declared.isdecimal() and int(declared) > MAX_ANSWER_BYTES:
                raise HttpUnreachable("answer too large")
            content = bytearray()
            async for chunk in reply.aiter_raw():
                content += chunk
                if len(content) > MAX_ANSWER_BYTES:
                    raise HttpUnreachable("answer too large")  # the connection is closed
        return Reply(reply.status_code, reply.headers, bytes(content))

    async def aclose(self) -> None:
        await self._client.aclose()


def _clean(value: str) -> str:
    """Refuses a line break or NUL, which would end or split a header (injection)."""
    if "\r" in value or "\n" in value or "\0" in value:
        raise ValueError("an HTTP header must not hold a line break")
    return value


_UNRESERVED = frozenset(string.ascii_letters + string.digits + "-._~")


def query_string(params: Mapping[str, str]) -> str:
    """`a=1&b=x%20y`, as urlencode(params, quote_via=quote) writes it (spaces as
    %20, which every server reads the same way); tokens, states and numbers,
    the usual values, pass through without quote()."""
    return "&".join(f"{_escaped(key)}={_escaped(value)}" for key, value in params.items())


def _escaped(text: str) -> str:
    return text if _UNRESERVED.issuperset(text) else quote(text, safe="")
