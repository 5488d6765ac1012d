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

import pytest

from gpu_worker.sources import http_client
from gpu_worker.sources.http_client import (
    KEEPALIVE_S,
    MAX_ANSWER_BYTES,
    ApiClient,
    HttpUnreachable,
)
from sdq.supervisor import free_port
from tests.support.loopback import OK, LoopbackServer, read_request


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
