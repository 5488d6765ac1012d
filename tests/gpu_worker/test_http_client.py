"""The HTTP source's client (gpu_worker/sources/http_client.py), over real TCP.

Loopback servers answer byte for byte (each answer in one write) and record what
they got; some misbehave on purpose: they cut answers short, trickle, flood
headers, send endless bodies, or act as a proxy. The last test runs the HTTP
source through this client against the real API app served by uvicorn."""

from __future__ import annotations

import asyncio
import logging
import time
import tracemalloc
from collections.abc import AsyncIterator, Awaitable, Callable

import pytest
import uvicorn
from fastapi import FastAPI
from pydantic import SecretStr
from redis.asyncio import Redis

from api.app import create_app
from api.settings import ApiSettings
from broker.queue import Queue
from broker.renders import RenderSample
from broker.states import JobState
from gpu_worker.errors import LeaseLost, SourceRefused, SourceUnavailable
from gpu_worker.settings import WorkerSettings
from gpu_worker.sources import http_client
from gpu_worker.sources.http import HttpSource
from gpu_worker.sources.http_client import (
    KEEPALIVE_S,
    MAX_ANSWER_BYTES,
    ApiClient,
    HttpUnreachable,
)
from sdq.embedded_redis import free_port
from tests.conftest import BACKEND_SECRET

OK = b'HTTP/1.1 200 OK\r\ncontent-type: application/json\r\ncontent-length: 5\r\n\r\n"ok"\n'

Handler = Callable[[asyncio.StreamReader, asyncio.StreamWriter], Awaitable[None]]
Answer = Callable[[bytes], bytes | None]


async def read_request(reader: asyncio.StreamReader) -> bytes:
    head = await reader.readuntil(b"\r\n\r\n")
    length = 0
    for line in head.split(b"\r\n"):
        name, _, value = line.partition(b":")
        if name.lower() == b"content-length":
            length = int(value)
    return head + await reader.readexactly(length)


class LoopbackServer:
    """A TCP server on 127.0.0.1 running `handler` per connection; counts connections
    and keeps the requests that `scripted` handlers read."""

    def __init__(self, handler: Handler | None = None, answer: Answer = lambda r: OK) -> None:
        self.handler = handler or self.scripted
        self.answer = answer
        self.requests: list[bytes] = []
        self.connections = 0
        self.url = ""
        self._server: asyncio.Server | None = None

    async def __aenter__(self) -> LoopbackServer:
        self._server = await asyncio.start_server(self._serve, "127.0.0.1", 0)
        port = self._server.sockets[0].getsockname()[1]
        self.url = f"http://127.0.0.1:{port}"
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        assert self._server is not None
        self._server.close()
        await self._server.wait_closed()

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.connections += 1
        try:
            await self.handler(reader, writer)
        except (asyncio.IncompleteReadError, ConnectionError):
            pass
        finally:
            writer.close()

    async def scripted(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        """Answers each request with `answer(request)`; None: hang up without answering."""
        while True:
            request = await read_request(reader)
            self.requests.append(request)
            reply = self.answer(request)
            if reply is None:
                return
            writer.write(reply)
            await writer.drain()


async def test_client_sends_the_request_and_reads_the_answer() -> None:
    async with LoopbackServer() as server:
        client = ApiClient(server.url + "/api/", timeout_s=5)
        reply = await client.request(
            "POST", "/backend/report", {"a": "x y", "b": "é&="}, {"X-Test": "1"}, b"{}"
        )
        await client.aclose()
    assert (reply.status, reply.body, reply.json()) == (200, b'"ok"\n', "ok")
    assert reply.headers["Content-Type"] == "application/json"
    head, _, body = server.requests[0].partition(b"\r\n\r\n")
    lines = head.split(b"\r\n")
    assert lines[0] == b"POST /api/backend/report?a=x%20y&b=%C3%A9%26%3D HTTP/1.1"
    host = server.url.removeprefix("http://")
    for line in [f"Host: {host}", "X-Test: 1", "Content-Type: application/json"]:
        assert line.lower().encode() in [sent.lower() for sent in lines]
    assert b"accept-encoding: identity" in [sent.lower() for sent in lines]
    assert body == b"{}"


async def test_client_keeps_one_connection_alive_across_requests() -> None:
    async with LoopbackServer() as server:
        client = ApiClient(server.url, timeout_s=5)
        for _ in range(5):
            assert (await client.request("GET", "/getNextJob", {}, {})).status == 200
        await client.aclose()
    assert (len(server.requests), server.connections) == (5, 1)


async def test_client_reads_a_chunked_answer() -> None:
    chunked = (
        b"HTTP/1.1 404 Not Found\r\ntransfer-encoding: chunked\r\n\r\n"
        b'6\r\n"no mo\r\n9\r\nre jobs"\n\r\n0\r\n\r\n'
    )
    async with LoopbackServer(answer=lambda request: chunked) as server:
        client = ApiClient(server.url, timeout_s=5)
        reply = await client.request("GET", "/getNextJob", {}, {})
        await client.aclose()
    assert (reply.status, reply.json()) == (404, "no more jobs")


async def test_client_opens_a_new_connection_after_the_server_closed_one() -> None:
    closing = OK.replace(b"\r\n\r\n", b"\r\nconnection: close\r\n\r\n", 1)
    async with LoopbackServer(answer=lambda request: closing) as server:
        client = ApiClient(server.url, timeout_s=5)
        for _ in range(3):
            assert (await client.request("GET", "/setJobStatus", {}, {})).status == 200
        await client.aclose()
    assert server.connections == 3


def test_client_drops_idle_connections_before_uvicorn_would() -> None:
    assert KEEPALIVE_S < 5.0  # uvicorn's default --timeout-keep-alive


async def test_client_never_reuses_a_connection_idle_for_too_long(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(http_client, "KEEPALIVE_S", 0.05)
    async with LoopbackServer() as server:
        client = ApiClient(server.url, timeout_s=5)
        for _ in range(3):
            await client.request("GET", "/getNextJob", {}, {})
            await asyncio.sleep(0.1)
        await client.aclose()
    assert server.connections == 3


async def test_client_reports_an_answer_cut_short_as_unreachable() -> None:
    server = LoopbackServer()

    async def cut_first(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        if server.connections > 1:
            return await server.scripted(reader, writer)
        await read_request(reader)
        writer.write(OK[:-3])  # then hang up in the middle of the body

    server.handler = cut_first
    async with server:
        client = ApiClient(server.url, timeout_s=5)
        with pytest.raises(HttpUnreachable):
            await client.request("GET", "/getNextJob", {}, {})
        assert (await client.request("GET", "/getNextJob", {}, {})).status == 200
        await client.aclose()
    assert server.connections == 2


async def test_client_refuses_an_answer_declared_too_large() -> None:
    big = b"HTTP/1.1 200 OK\r\ncontent-length: %d\r\n\r\n" % (MAX_ANSWER_BYTES + 1)
    async with LoopbackServer(answer=lambda request: big) as server:
        client = ApiClient(server.url, timeout_s=5)
        with pytest.raises(HttpUnreachable, match="too large"):
            await client.request("GET", "/getNextJob", {}, {})
        await client.aclose()


async def endless(
    head: bytes, line: bytes, reader: asyncio.StreamReader, writer: asyncio.StreamWriter
) -> None:
    """Writes `head`, then `line` forever, until the client hangs up."""
    await read_request(reader)
    writer.write(head)
    while True:
        writer.write(line * 64)
        await writer.drain()


@pytest.mark.parametrize(
    "head",
    [
        b"HTTP/1.1 200 OK\r\ncontent-type: application/json\r\n\r\n",  # body until close
        b"HTTP/1.1 200 OK\r\ntransfer-encoding: chunked\r\n\r\n",
    ],
    ids=["close-delimited", "chunked"],
)
async def test_client_stops_reading_an_endless_body_at_its_limit(head: bytes) -> None:
    line = b"400\r\n" + b"x" * 1024 + b"\r\n" if b"chunked" in head else b"x" * 1024

    async def flood(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await endless(head, line, reader, writer)

    async with LoopbackServer(flood) as server:
        client = ApiClient(server.url, timeout_s=10)
        tracemalloc.start()
        try:
            with pytest.raises(HttpUnreachable, match="too large"):
                await client.request("GET", "/getNextJob", {}, {})
            peak = tracemalloc.get_traced_memory()[1]
        finally:
            tracemalloc.stop()
        await client.aclose()
    assert peak < 4 * MAX_ANSWER_BYTES


async def test_client_refuses_endless_headers_with_bounded_memory() -> None:
    async def flood(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await endless(b"HTTP/1.1 200 OK\r\n", b"x-flood: " + b"a" * 1000 + b"\r\n", reader, writer)

    async with LoopbackServer(flood) as server:
        client = ApiClient(server.url, timeout_s=10)
        tracemalloc.start()
        started = time.monotonic()
        try:
            with pytest.raises(HttpUnreachable, match="RemoteProtocolError"):
                await client.request("GET", "/getNextJob", {}, {})
            peak = tracemalloc.get_traced_memory()[1]
        finally:
            tracemalloc.stop()
        await client.aclose()
    assert time.monotonic() - started < 5  # refused, not timed out
    assert peak < 2 * MAX_ANSWER_BYTES


async def test_client_gives_up_on_a_silent_server_after_its_timeout() -> None:
    async with LoopbackServer(answer=lambda request: b"") as server:  # reads, never answers
        client = ApiClient(server.url, timeout_s=0.2)
        with pytest.raises(HttpUnreachable, match="timed out"):
            await client.request("GET", "/getNextJob", {}, {})
        await client.aclose()


async def test_client_timeout_bounds_the_whole_request_of_a_trickling_server() -> None:
    async def trickle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await read_request(reader)
        for byte in OK[:-1]:  # each byte well within the read timeout, never the whole answer
            writer.write(bytes([byte]))
            await writer.drain()
            await asyncio.sleep(0.05)

    async with LoopbackServer(trickle) as server:
        client = ApiClient(server.url, timeout_s=0.5)
        started = time.monotonic()
        with pytest.raises(HttpUnreachable, match="timed out"):
            await client.request("GET", "/getNextJob", {}, {})
        await client.aclose()
    assert time.monotonic() - started < 1.5


async def test_client_reports_a_refused_connection_without_the_url(
    caplog: pytest.LogCaptureFixture,
) -> None:
    client = ApiClient(f"http://127.0.0.1:{free_port()}", timeout_s=5)
    with caplog.at_level(logging.DEBUG), pytest.raises(HttpUnreachable) as raised:
        await client.request("GET", "/getNextJob", {"secret": "s3cr3t-value"}, {})
    await client.aclose()
    assert "s3cr3t" not in str(raised.value)
    assert "s3cr3t" not in caplog.text


async def test_client_refuses_a_header_that_would_inject_a_line() -> None:
    client = ApiClient("http://127.0.0.1:9", timeout_s=5)
    with pytest.raises(ValueError, match="line break"):
        await client.request("GET", "/getNextJob", {}, {"Authorization": "Bearer x\r\nX: y"})
    await client.aclose()


@pytest.mark.parametrize("url", ["ftp://host/", "http://", "http://h/?q=1", "http://u:p@h/"])
def test_client_refuses_an_api_url_it_cannot_use(url: str) -> None:
    with pytest.raises(ValueError, match="API URL"):
        ApiClient(url, timeout_s=5)


# -- proxies from the environment ---------------------------------------------------


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


# -- the HTTP source through this client ----------------------------------------------


async def test_http_source_refuses_a_secret_with_a_line_break() -> None:
    settings = WorkerSettings(transport="http", backend_secret=SecretStr("s\r\nX-Evil: 1"))
    source = HttpSource(settings, "w-1")
    with pytest.raises(SourceRefused):
        await source.claim()
    await source.aclose()


async def test_http_source_treats_an_oversized_answer_as_unavailable() -> None:
    big = b"HTTP/1.1 200 OK\r\ncontent-length: %d\r\n\r\n" % (MAX_ANSWER_BYTES + 1)
    async with LoopbackServer(answer=lambda request: big) as server:
        settings = WorkerSettings(transport="http", backend_secret="s", api_url=server.url)
        source = HttpSource(settings, "w-1")
        with pytest.raises(SourceUnavailable, match="too large"):
            await source.claim()
        await source.aclose()


@pytest.fixture
async def api_url(redis: Redis, settings: ApiSettings) -> AsyncIterator[str]:
    """The real app (its lifespan run here) served by uvicorn in this event loop."""
    app: FastAPI = create_app(settings, redis=redis)
    port = free_port()
    config = uvicorn.Config(
        app, host="127.0.0.1", port=port, lifespan="off", log_config=None, access_log=False
    )
    server = uvicorn.Server(config)
    async with app.router.lifespan_context(app):
        serving = asyncio.create_task(server.serve())
        while not server.started:
            assert not serving.done(), "uvicorn did not start"
            await asyncio.sleep(0.01)
        yield f"http://127.0.0.1:{port}"
        server.should_exit = True
        await serving


async def test_http_source_runs_the_whole_protocol_against_the_api_over_tcp(
    api_url: str, settings: ApiSettings, queue: Queue
) -> None:
    worker = WorkerSettings(
        transport="http",
        api_url=api_url,
        key_prefix=settings.key_prefix,
        backend_secret=SecretStr(BACKEND_SECRET),
    )
    source = HttpSource(worker, "w-tcp")
    first, second = "a" * 32, "b" * 32
    await queue.add_job(first, "first, released", 2, 576, 576)
    await queue.add_job(second, "second, completed", 1, 768, 576)

    claim = await source.claim()
    assert claim is not None and claim.job.token == first and claim.fence == 1
    await source.renew(claim, 1)
    assert (await queue.status(first)).progress == 1
    assert await source.release(claim, "CUDA out of memory") is JobState.NEW
    with pytest.raises(LeaseLost):
        await source.complete(claim)  # released: the claim is stale

    again = await source.claim()
    assert again is not None and (again.job.token, again.fence) == (first, 2)
    await source.complete(again)
    later = await source.claim()
    assert later is not None and later.job.token == second
    await source.complete(later)
    assert await source.claim() is None
    await source.report([RenderSample(768, 576, 1, 900)], leaving=False)
    await source.aclose()

    assert [(await queue.status(t)).state for t in (first, second)] == [JobState.COMPLETE] * 2
    assert await queue.redis.hget(queue.keys.render_ms, "768x576:images") == "1"
