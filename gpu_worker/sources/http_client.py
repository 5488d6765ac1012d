"""What the HTTP source needs from an HTTP client, and the httpx implementation.

The source sends a handful of small requests per job; the client behind it is
swappable: `LeanHttpClient` (gpu_worker/sources/lean_http.py) in production,
`HttpxClient` where a test injects an httpx transport (ASGITransport drives the
real API app in-process).
"""

from __future__ import annotations

import json
import string
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Protocol
from urllib.parse import quote

import httpx


class HttpUnreachable(Exception):
    """No answer: refused, reset, timed out, closed early, or not HTTP. The message
    names the failure only (never a URL, which may carry the secret)."""


@dataclass(frozen=True, slots=True)
class Reply:
    status: int
    headers: Mapping[str, str]  # names in lower case
    body: bytes

    def json(self) -> object:
        """The decoded JSON body; None if it is not JSON."""
        try:
            return json.loads(self.body)
        except ValueError:
            return None


class HttpClient(Protocol):
    async def request(
        self,
        method: str,
        path: str,
        params: Mapping[str, str],
        headers: Mapping[str, str],
        body: bytes | None = None,
    ) -> Reply:
        """One request to the API (`path` below its base URL); a `body` is sent as
        JSON. Raises HttpUnreachable when no answer comes back."""
        ...

    async def aclose(self) -> None: ...


_UNRESERVED = frozenset(string.ascii_letters + string.digits + "-._~")


def query_string(params: Mapping[str, str]) -> str:
    """`a=1&b=x%20y`, as urlencode(params, quote_via=quote) writes it (spaces as
    %20, which every server reads the same way); tokens, states and numbers,
    the usual values, pass through without quote()."""
    return "&".join(f"{_escaped(key)}={_escaped(value)}" for key, value in params.items())


def _escaped(text: str) -> str:
    return text if _UNRESERVED.issuperset(text) else quote(text, safe="")


class HttpxClient:
    """The HttpClient over httpx, for an injected transport (tests, ASGITransport)."""

    def __init__(self, base_url: str, timeout_s: float, transport: httpx.AsyncBaseTransport):
        self._client = httpx.AsyncClient(base_url=base_url, transport=transport, timeout=timeout_s)

    async def request(
        self,
        method: str,
        path: str,
        params: Mapping[str, str],
        headers: Mapping[str, str],
        body: bytes | None = None,
    ) -> Reply:
        if body is not None:
            headers = {**headers, "Content-Type": "application/json"}
        url = f"{path}?{query_string(params)}" if params else path
        try:
            reply = await self._client.request(method, url, headers=headers, content=body)
        except httpx.TransportError as exc:  # never str(exc): a URL may carry the secret
            raise HttpUnreachable(type(exc).__name__) from exc
        return Reply(reply.status_code, reply.headers, reply.content)

    async def aclose(self) -> None:
        await self._client.aclose()
