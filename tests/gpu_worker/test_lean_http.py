"""The HTTP source's lean client (gpu_worker/sources/lean_http.py), over real TCP.

A scripted loopback server answers byte for byte and records what it got; the
last test runs the HTTP source through this client against the real API app
served by uvicorn in-process."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Callable

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
from gpu_worker.errors import LeaseLost, SourceRefused
from gpu_worker.settings import WorkerSettings
from gpu_worker.sources.http import HttpSource
from gpu_worker.sources.http_client import HttpUnreachable
from gpu_worker.sources.lean_http import MAX_BODY_BYTES, LeanHttpClient
from sdq.supervisor import free_port
from tests.conftest import BACKEND_SECRET

OK = b'HTTP/1.1 200 OK\r\ncontent-type: application/json\r\ncontent-length: 5\r\n\r\n"ok"\n'

Answer = Callable[[bytes], bytes | None]


class ScriptedServer:
    """Answers each request with `answer(request)`; None closes the connection
    without an answer. Counts connections, records every request's bytes."""

    def __init__(self, answer: Answer = lambda request: OK) -> None:
        self.answer = answer
        self.requests: list[bytes] = []
        self.connections = 0
        self.url = ""
        self._server: asyncio.Server | None = None

    async def __aenter__(self) -> ScriptedServer:
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
            while True:
                head = await reader.readuntil(b"\r\n\r\n")
                length = 0
                for line in head.split(b"\r\n"):
                    name, _, value = line.partition(b":")
                    if name.lower() == b"content-length":
                        length = int(value)
                request = head + await reader.readexactly(length)
                self.requests.append(request)
                reply = self.answer(request)
                if reply is None:
                    break
                writer.write(reply)
                await writer.drain()
        except (asyncio.IncompleteReadError, ConnectionError):
            pass
        finally:
            writer.close()


async def test_lean_client_sends_one_exact_request_and_reads_the_answer() -> None:
    async with ScriptedServer() as server:
        client = LeanHttpClient(server.url + "/api/", timeout_s=5)
        reply = await client.request(
            "POST", "/backend/report", {"a": "x y", "b": "é&="}, {"X-Test": "1"}, b"{}"
        )
        await client.aclose()
    assert (reply.status, reply.body, reply.json()) == (200, b'"ok"\n', "ok")
    assert reply.headers["content-type"] == "application/json"
    host = server.url.removeprefix("http://")
    assert server.requests == [
        b"POST /api/backend/report?a=x%20y&b=%C3%A9%26%3D HTTP/1.1\r\n"
        + f"Host: {host}\r\n".encode()
        + b"X-Test: 1\r\nContent-Type: application/json\r\nContent-Length: 2\r\n\r\n{}"
    ]


async def test_lean_client_keeps_one_connection_alive_across_requests() -> None:
    async with ScriptedServer() as server:
        client = LeanHttpClient(server.url, timeout_s=5)
        for _ in range(5):
            assert (await client.request("GET", "/getNextJob", {}, {})).status == 200
        await client.aclose()
    assert (len(server.requests), server.connections) == (5, 1)


async def test_lean_client_reads_a_chunked_answer() -> None:
    chunked = (
        b"HTTP/1.1 404 Not Found\r\ntransfer-encoding: chunked\r\n\r\n"
        b'6\r\n"no mo\r\n9\r\nre jobs"\n\r\n0\r\n\r\n'
    )
    async with ScriptedServer(lambda request: chunked) as server:
        client = LeanHttpClient(server.url, timeout_s=5)
        reply = await client.request("GET", "/getNextJob", {}, {})
        await client.aclose()
    assert (reply.status, reply.json()) == (404, "no more jobs")


async def test_lean_client_opens_a_new_connection_after_the_server_closed_one() -> None:
    closing = OK.replace(b"\r\n\r\n", b"\r\nconnection: close\r\n\r\n", 1)
    async with ScriptedServer(lambda request: closing) as server:
        client = LeanHttpClient(server.url, timeout_s=5)
        for _ in range(3):
            assert (await client.request("GET", "/setJobStatus", {}, {})).status == 200
        await client.aclose()
    assert server.connections == 3


async def test_lean_client_never_reuses_a_connection_idle_for_too_long() -> None:
    async with ScriptedServer() as server:
        client = LeanHttpClient(server.url, timeout_s=5, max_idle_s=0.0)
        for _ in range(3):
            await client.request("GET", "/getNextJob", {}, {})
        await client.aclose()
    assert server.connections == 3


async def test_lean_client_reports_an_answer_cut_short_as_unreachable() -> None:
    cut = OK[:-3]  # the server goes away in the middle of the body
    answers = iter([cut, OK])

    def answer(request: bytes) -> bytes | None:
        reply = next(answers)
        return None if reply is cut else reply

    async with ScriptedServer(answer) as server:
        client = LeanHttpClient(server.url, timeout_s=5)
        with pytest.raises(HttpUnreachable):
            await client.request("GET", "/getNextJob", {}, {})
        assert (await client.request("GET", "/getNextJob", {}, {})).status == 200
        await client.aclose()
    assert server.connections == 2


async def test_lean_client_refuses_an_answer_too_large() -> None:
    size = MAX_BODY_BYTES + 1
    big = b"HTTP/1.1 200 OK\r\ncontent-length: %d\r\n\r\n%s" % (size, b"x" * size)
    async with ScriptedServer(lambda request: big) as server:
        client = LeanHttpClient(server.url, timeout_s=5)
        with pytest.raises(HttpUnreachable, match="too large"):
            await client.request("GET", "/getNextJob", {}, {})
        await client.aclose()


async def test_lean_client_gives_up_on_a_silent_server_after_its_timeout() -> None:
    async with ScriptedServer(lambda request: b"") as server:  # reads, never answers
        client = LeanHttpClient(server.url, timeout_s=0.2)
        with pytest.raises(HttpUnreachable, match="timed out"):
            await client.request("GET", "/getNextJob", {}, {})
        await client.aclose()


async def test_lean_client_reports_a_refused_connection_as_unreachable() -> None:
    client = LeanHttpClient(f"http://127.0.0.1:{free_port()}", timeout_s=5)
    with pytest.raises(HttpUnreachable):
        await client.request("GET", "/getNextJob", {}, {})


async def test_lean_client_refuses_a_header_that_would_inject_a_line() -> None:
    client = LeanHttpClient("http://127.0.0.1:9", timeout_s=5)
    with pytest.raises(ValueError, match="line break"):
        await client.request("GET", "/getNextJob", {}, {"Authorization": "Bearer x\r\nX: y"})


@pytest.mark.parametrize("url", ["ftp://host/", "http://", "http://h/?q=1", "http://u:p@h/"])
def test_lean_client_refuses_an_api_url_it_cannot_use(url: str) -> None:
    with pytest.raises(ValueError, match="API URL"):
        LeanHttpClient(url, timeout_s=5)


async def test_http_source_refuses_a_secret_with_a_line_break() -> None:
    settings = WorkerSettings(transport="http", backend_secret=SecretStr("s\r\nX-Evil: 1"))
    source = HttpSource(settings, "w-1")
    with pytest.raises(SourceRefused):
        await source.claim()
    await source.aclose()


# -- the HTTP source through the lean client, against the real API over TCP -------


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


async def test_http_source_runs_the_whole_protocol_through_the_lean_client(
    api_url: str, settings: ApiSettings, queue: Queue
) -> None:
    worker = WorkerSettings(
        transport="http",
        api_url=api_url,
        key_prefix=settings.key_prefix,
        backend_secret=SecretStr(BACKEND_SECRET),
    )
    source = HttpSource(worker, "w-lean")
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
