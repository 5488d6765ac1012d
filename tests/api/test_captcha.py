"""The siteverify client against real loopback servers that answer in the ways HTTP allows."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Awaitable, Callable

import pytest

from api.siteverify import MAX_BODY_BYTES, SiteverifyClient, SiteverifyError
from sdq.doubles.fake_hcaptcha import FakeHCaptcha

Answerer = Callable[[bytes], bytes | None]  # request head+body -> raw answer (None: say nothing)


class LoopbackServer:
    """Reads one request at a time and writes what `answer` returns; counts connections."""

    def __init__(self, answer: Answerer, close_after_answer: bool = False) -> None:
        self.answer = answer
        self.close_after_answer = close_after_answer
        self.connections = 0
        self.requests: list[bytes] = []
        self.server: asyncio.Server | None = None
        self.writers: list[asyncio.StreamWriter] = []

    @property
    def url(self) -> str:
        assert self.server is not None
        port = self.server.sockets[0].getsockname()[1]
        return f"http://127.0.0.1:{port}/siteverify"

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.connections += 1
        self.writers.append(writer)
        try:
            while True:
                head = await reader.readuntil(b"\r\n\r\n")
                length = int(head.lower().split(b"content-length:")[1].split(b"\r\n")[0])
                request = head + await reader.readexactly(length)
                self.requests.append(request)
                raw = self.answer(request)
                if raw is None:
                    await asyncio.sleep(3600)
                    return
                writer.write(raw)
                await writer.drain()
                if self.close_after_answer:
                    break
        except (asyncio.IncompleteReadError, ConnectionError):
            pass
        finally:
            writer.close()

    def drop_idle_connections(self) -> None:
        for writer in self.writers:
            writer.close()


Serve = Callable[..., Awaitable[LoopbackServer]]


def _json(body: bytes, extra: bytes = b"") -> bytes:
    return (
        b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\n%sContent-Length: %d\r\n\r\n%s"
        % (extra, len(body), body)
    )


@pytest.fixture
async def serve() -> AsyncIterator[Serve]:
    servers: list[LoopbackServer] = []

    async def start(answer: Answerer, close_after_answer: bool = False) -> LoopbackServer:
        server = LoopbackServer(answer, close_after_answer)
        server.server = await asyncio.start_server(server._serve, "127.0.0.1", 0)
        servers.append(server)
        return server

    yield start
    for server in servers:
        assert server.server is not None
        server.drop_idle_connections()
        server.server.close()


async def test_siteverify_posts_the_form_and_reads_the_answer(
    fake_hcaptcha: FakeHCaptcha,
) -> None:
    async with SiteverifyClient(fake_hcaptcha.url, timeout_s=2) as client:
        answer = await client.post_form({"secret": "s3", "response": "good-a b&c"})
    assert answer.status == 200
    assert b'"success": true' in answer.body
    assert fake_hcaptcha.calls[-1] == {"secret": "s3", "response": "good-a b&c"}


async def test_siteverify_keeps_one_connection_alive_for_sequential_calls(serve: Serve) -> None:
    server = await serve(lambda request: _json(b'{"success":true}'))
    async with SiteverifyClient(server.url, timeout_s=2) as client:
        for _ in range(5):
            assert (await client.post_form({"response": "x"})).status == 200
    assert server.connections == 1
    assert len(server.requests) == 5
    assert server.requests[0].startswith(b"POST /siteverify HTTP/1.1\r\nHost: 127.0.0.1:")


async def test_siteverify_reads_a_chunked_answer(serve: Serve) -> None:
    chunked = (
        b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n"
        b'5\r\n{"suc\r\n'
        b'b\r\ncess":true}\r\n0\r\n\r\n'
    )
    server = await serve(lambda request: chunked)
    async with SiteverifyClient(server.url, timeout_s=2) as client:
        first = await client.post_form({"response": "x"})
        second = await client.post_form({"response": "y"})
    assert first.body == second.body == b'{"success":true}'
    assert server.connections == 1


async def test_siteverify_opens_a_new_connection_when_the_server_closes(serve: Serve) -> None:
    server = await serve(
        lambda request: _json(b"{}", b"Connection: close\r\n"), close_after_answer=True
    )
    async with SiteverifyClient(server.url, timeout_s=2) as client:
        for _ in range(3):
            assert (await client.post_form({"response": "x"})).body == b"{}"
    assert server.connections == 3


async def test_siteverify_replaces_an_idle_connection_the_server_dropped(serve: Serve) -> None:
    server = await serve(lambda request: _json(b"{}"))
    async with SiteverifyClient(server.url, timeout_s=2) as client:
        await client.post_form({"response": "x"})
        server.drop_idle_connections()
        await asyncio.sleep(0.05)
        assert (await client.post_form({"response": "y"})).status == 200
    assert server.connections == 2


async def test_siteverify_gives_up_after_the_timeout(serve: Serve) -> None:
    server = await serve(lambda request: None)
    async with SiteverifyClient(server.url, timeout_s=0.2) as client:
        with pytest.raises(TimeoutError):
            await client.post_form({"response": "x"})


async def test_siteverify_refuses_an_oversized_answer(serve: Serve) -> None:
    server = await serve(lambda request: _json(b"x" * (MAX_BODY_BYTES + 1)))
    async with SiteverifyClient(server.url, timeout_s=2) as client:
        with pytest.raises(SiteverifyError):
            await client.post_form({"response": "x"})


async def test_siteverify_reports_a_server_that_hangs_up_mid_answer(serve: Serve) -> None:
    server = await serve(
        lambda request: b"HTTP/1.1 200 OK\r\nContent-Length: 50\r\n\r\n{", close_after_answer=True
    )
    async with SiteverifyClient(server.url, timeout_s=2) as client:
        with pytest.raises(SiteverifyError, match="closed"):
            await client.post_form({"response": "x"})


async def test_siteverify_reports_an_answer_that_is_not_http(serve: Serve) -> None:
    server = await serve(lambda request: b"SSH-2.0-OpenSSH\r\n\r\n")
    async with SiteverifyClient(server.url, timeout_s=2) as client:
        with pytest.raises(SiteverifyError, match="bad HTTP"):
            await client.post_form({"response": "x"})


@pytest.mark.parametrize("url", ["ftp://example.com/x", "siteverify", "http:///path"])
def test_siteverify_refuses_a_url_that_is_not_http(url: str) -> None:
    with pytest.raises(ValueError, match="verify URL"):
        SiteverifyClient(url, timeout_s=1)
