"""The worker's HTTP client honours HTTP_PROXY, HTTPS_PROXY (CONNECT) and NO_PROXY."""

from __future__ import annotations

import asyncio
from collections.abc import Callable

import pytest

from gpu_worker.sources.http_client import (
    ApiClient,
    HttpUnreachable,
)
from tests.support.loopback import OK, LoopbackServer, read_request


@pytest.fixture
def proxy_env(monkeypatch: pytest.MonkeyPatch) -> Callable[..., None]:
    """Sets proxy variables, with every other proxy variable cleared."""
    names = ["HTTP_PROXY", "HTTPS_PROXY", "ALL_PROXY", "NO_PROXY"]
    for name in names + [name.lower() for name in names]:
        monkeypatch.delenv(name, raising=False)

    def set_env(**values: str) -> None:
        for name, value in values.items():
            monkeypatch.setenv(name, value)

    return set_env


class Proxy(LoopbackServer):
    """A forward proxy that answers plain-HTTP requests itself and refuses CONNECT;
    keeps each request line it receives."""

    def __init__(self) -> None:
        super().__init__(self.proxy)
        self.lines: list[bytes] = []

    async def proxy(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        request = await read_request(reader)
        self.lines.append(request.split(b"\r\n", 1)[0])
        refused = b"HTTP/1.1 403 Forbidden\r\ncontent-length: 0\r\n\r\n"
        writer.write(refused if request.startswith(b"CONNECT ") else OK)
        await writer.drain()


async def test_client_sends_plain_http_through_http_proxy(proxy_env: Callable[..., None]) -> None:
    async with Proxy() as proxy:
        proxy_env(HTTP_PROXY=proxy.url)
        client = ApiClient("http://api.invalid:9090", timeout_s=5)
        reply = await client.request("GET", "/getNextJob", {}, {})
        await client.aclose()
    assert reply.status == 200
    assert proxy.lines == [b"GET http://api.invalid:9090/getNextJob HTTP/1.1"]


async def test_client_tunnels_https_through_https_proxy(proxy_env: Callable[..., None]) -> None:
    async with Proxy() as proxy:
        proxy_env(HTTPS_PROXY=proxy.url)
        client = ApiClient("https://api.invalid", timeout_s=5)
        with pytest.raises(HttpUnreachable, match="ProxyError"):  # this proxy refuses tunnels
            await client.request("GET", "/getNextJob", {}, {})
        await client.aclose()
    assert proxy.lines == [b"CONNECT api.invalid:443 HTTP/1.1"]


async def test_client_goes_direct_to_a_host_in_no_proxy(proxy_env: Callable[..., None]) -> None:
    async with Proxy() as proxy, LoopbackServer() as server:
        proxy_env(HTTP_PROXY=proxy.url, NO_PROXY="127.0.0.1")
        client = ApiClient(server.url, timeout_s=5)
        assert (await client.request("GET", "/getNextJob", {}, {})).status == 200
        await client.aclose()
    assert (proxy.lines, len(server.requests)) == ([], 1)
