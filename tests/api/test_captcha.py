"""hCaptcha verification (api/captcha.py) against real loopback servers, most of them
hostile: leftovers after an answer, idle hang-ups, endless or slow answers, lies.

The contract: any failure is `captcha failed` (verify answers False), never an
exception; an answer is never taken from another request's leftovers."""

from __future__ import annotations

import asyncio
import logging
import time
import tracemalloc
from collections.abc import AsyncIterator, Awaitable, Callable

import aiohttp
import pytest

from api import captcha
from api.captcha import MAX_ANSWER_BYTES, CaptchaVerifier, hcaptcha_session
from sdq.doubles.fake_hcaptcha import FakeHCaptcha
from sdq.supervisor import free_port
from tests.support.loopback import Handler, LoopbackServer


def answer(body: bytes, status: bytes = b"200 OK", extra: bytes = b"") -> bytes:
    return b"HTTP/1.1 %s\r\nContent-Type: application/json\r\n%sContent-Length: %d\r\n\r\n%s" % (
        status,
        extra,
        len(body),
        body,
    )


PASS, FAIL = answer(b'{"success":true}'), answer(b'{"success":false}')


class Server(LoopbackServer):
    """A fake siteverify: runs `make(server)` per connection; handlers read requests
    through `read` (which keeps them)."""

    def __init__(self, make: Callable[[Server], Handler]) -> None:
        super().__init__(path="/siteverify")
        self.handler = make(self)


def answering(raw: bytes) -> Callable[[Server], Handler]:
    """A handler that answers every request on a connection with `raw`, in one write."""

    def make(server: Server) -> Handler:
        async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
            while True:
                await server.read(reader)
                writer.write(raw)
                await writer.drain()

        return handle

    return make


Serve = Callable[[Callable[[Server], Handler]], Awaitable[Server]]


@pytest.fixture
async def serve() -> AsyncIterator[Serve]:
    servers: list[Server] = []

    async def start(make: Callable[[Server], Handler]) -> Server:
        server = Server(make)
        servers.append(await server.__aenter__())
        return server

    yield start
    for server in servers:
        await server.__aexit__()


@pytest.fixture
async def session() -> AsyncIterator[aiohttp.ClientSession]:
    async with hcaptcha_session() as made:
        yield made


def verifier(session: aiohttp.ClientSession, url: str, timeout_s: float = 2) -> CaptchaVerifier:
    return CaptchaVerifier(session, url, "s3", None, timeout_s)


# -- an honest server --------------------------------------------------------------


async def test_captcha_posts_the_form_and_reads_the_answer(
    session: aiohttp.ClientSession, fake_hcaptcha: FakeHCaptcha
) -> None:
    check = CaptchaVerifier(session, fake_hcaptcha.url, "s3", "site-key", timeout_s=2)
    assert await check.verify("good-a b&c", "203.0.113.7") is True
    assert fake_hcaptcha.calls[-1] == {
        "secret": "s3",
        "response": "good-a b&c",
        "sitekey": "site-key",
        "remoteip": "203.0.113.7",
    }
    assert await verifier(session, fake_hcaptcha.url).verify("bad-token", None) is False
    assert fake_hcaptcha.calls[-1] == {"secret": "s3", "response": "bad-token"}


async def test_captcha_keeps_one_connection_alive_for_sequential_calls(
    session: aiohttp.ClientSession, serve: Serve
) -> None:
    server = await serve(answering(PASS))
    check = verifier(session, server.url)
    assert [await check.verify("x", None) for _ in range(5)] == [True] * 5
    assert (server.connections, len(server.requests)) == (1, 5)
    assert server.requests[0].startswith(b"POST /siteverify HTTP/1.1\r\n")
    assert server.requests[0].endswith(b"\r\n\r\nsecret=s3&response=x")
    assert b"accept-encoding" not in server.requests[0].lower()  # nothing to decompress


async def test_captcha_reads_a_chunked_answer(session: aiohttp.ClientSession, serve: Serve) -> None:
    chunked = (
        b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n"
        b'5\r\n{"suc\r\nb\r\ncess":true}\r\n0\r\n\r\n'
    )
    server = await serve(answering(chunked))
    check = verifier(session, server.url)
    assert [await check.verify("x", None), await check.verify("y", None)] == [True, True]
    assert server.connections == 1


# -- leftovers: an answer belongs to its own request ---------------------------------


@pytest.mark.parametrize("when", ["in-the-same-write", "while-idle"])
async def test_captcha_never_reads_a_previous_answers_leftovers(
    session: aiohttp.ClientSession, serve: Serve, when: str
) -> None:
    """The server says false to every request, but after its very first answer it
    also sends an unasked `success: true`; a later verify must not take it for its own."""

    def make(server: Server) -> Handler:
        async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
            await server.read(reader)
            if len(server.requests) > 1:
                writer.write(FAIL)
            elif when == "in-the-same-write":
                writer.write(FAIL + PASS)
            else:
                writer.write(FAIL)
                await writer.drain()
                await asyncio.sleep(0.05)
                writer.write(PASS)
            await writer.drain()
            while True:
                await server.read(reader)
                writer.write(FAIL)
                await writer.drain()

        return handle

    server = await serve(make)
    check = verifier(session, server.url)
    assert await check.verify("first", None) is False
    await asyncio.sleep(0.2)  # the leftover has arrived
    assert await check.verify("second", None) is False
    assert await check.verify("third", None) is False
    assert server.connections == 2  # the connection holding the leftover was closed


# -- connections that die ----------------------------------------------------------


async def test_captcha_replaces_a_connection_the_server_closed_while_idle(
    session: aiohttp.ClientSession, serve: Serve
) -> None:
    def make(server: Server) -> Handler:
        async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
            await server.read(reader)
            writer.write(PASS)
            await writer.drain()
            await asyncio.sleep(0.05)  # its keep-alive timeout: hang up

        return handle

    server = await serve(make)
    check = verifier(session, server.url)
    for _ in range(3):
        assert await check.verify("x", None) is True
        await asyncio.sleep(0.2)
    assert (server.connections, len(server.requests)) == (3, 3)


async def test_captcha_retries_once_when_the_server_hangs_up_as_a_request_arrives(
    session: aiohttp.ClientSession, serve: Serve
) -> None:
    """Each connection answers one request, then closes as the next one comes in
    (its keep-alive timeout racing our reuse): every verify still succeeds."""

    def make(server: Server) -> Handler:
        async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
            await server.read(reader)
            writer.write(PASS)
            await writer.drain()
            await reader.readuntil(b"\r\n\r\n")  # the next request: hang up, unanswered

        return handle

    server = await serve(make)
    check = verifier(session, server.url)
    assert [await check.verify(str(i), None) for i in range(4)] == [True] * 4
    assert server.connections == 4


async def test_captcha_retries_a_connection_that_dies_unanswered_only_once(
    session: aiohttp.ClientSession, serve: Serve
) -> None:
    def make(server: Server) -> Handler:
        async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
            await server.read(reader)  # and hang up without a word

        return handle

    server = await serve(make)
    assert await verifier(session, server.url).verify("x", None) is False
    assert len(server.requests) == 2


async def test_captcha_never_reuses_a_connection_idle_for_too_long(
    serve: Serve, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(captcha, "IDLE_S", 0.05)
    server = await serve(answering(PASS))
    async with hcaptcha_session() as session:
        check = verifier(session, server.url)
        for _ in range(3):
            assert await check.verify("x", None) is True
            await asyncio.sleep(0.1)
    assert server.connections == 3


async def test_captcha_fails_when_the_verifier_is_unreachable(
    session: aiohttp.ClientSession,
) -> None:
    check = verifier(session, f"http://127.0.0.1:{free_port()}/siteverify")
    assert await check.verify("good-1", None) is False


# -- answers too large, too slow, or not what they claim ---------------------------


async def test_captcha_fails_on_an_answer_declared_too_large_then_recovers(
    session: aiohttp.ClientSession, serve: Serve
) -> None:
    big = b"HTTP/1.1 200 OK\r\nContent-Length: %d\r\n\r\n{" % (MAX_ANSWER_BYTES + 1)
    answers = iter([big, PASS])

    def make(server: Server) -> Handler:
        async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
            while True:
                await server.read(reader)
                writer.write(next(answers))
                await writer.drain()

        return handle

    server = await serve(make)
    check = verifier(session, server.url)
    assert await check.verify("x", None) is False
    assert await check.verify("y", None) is True
    assert server.connections == 2  # the unread answer's connection was closed


@pytest.mark.parametrize("framing", [b"", b"Transfer-Encoding: chunked\r\n"])
async def test_captcha_stops_reading_an_endless_answer_at_its_limit(
    session: aiohttp.ClientSession, serve: Serve, framing: bytes
) -> None:
    piece = b"400\r\n" + b" " * 1024 + b"\r\n" if framing else b" " * 1024

    def make(server: Server) -> Handler:
        async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
            await server.read(reader)
            writer.write(b'HTTP/1.1 200 OK\r\n%s\r\n{"success":true' % framing)
            while True:
                writer.write(piece * 64)
                await writer.drain()

        return handle

    server = await serve(make)
    tracemalloc.start()
    try:
        assert await verifier(session, server.url, timeout_s=10).verify("x", None) is False
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert peak < 16 * MAX_ANSWER_BYTES


async def test_captcha_fails_on_endless_headers_quickly(
    session: aiohttp.ClientSession, serve: Serve
) -> None:
    def make(server: Server) -> Handler:
        async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
            await server.read(reader)
            writer.write(b"HTTP/1.1 200 OK\r\n")
            while True:
                writer.write(b"X-Flood: " + b"a" * 100 + b"\r\n")
                await writer.drain()

        return handle

    server = await serve(make)
    started = time.monotonic()
    assert await verifier(session, server.url, timeout_s=10).verify("x", None) is False
    assert time.monotonic() - started < 5  # refused by the parser, not timed out


@pytest.mark.parametrize("trickle", [False, True], ids=["silent", "trickling"])
async def test_captcha_fails_on_a_slow_answer_within_its_timeout(
    session: aiohttp.ClientSession, serve: Serve, trickle: bool
) -> None:
    def make(server: Server) -> Handler:
        async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
            await server.read(reader)
            for byte in PASS if trickle else b"":
                writer.write(bytes([byte]))
                await writer.drain()
                await asyncio.sleep(0.02)
            await asyncio.sleep(3600)

        return handle

    server = await serve(make)
    started = time.monotonic()
    assert await verifier(session, server.url, timeout_s=0.3).verify("x", None) is False
    assert time.monotonic() - started < 1.0
    assert len(server.requests) == 1  # a timeout is never retried


@pytest.mark.parametrize(
    "raw",
    [
        answer(b"<html>not json</html>"),
        answer(b'{"success":true}', status=b"500 Internal Server Error"),
        answer(b'{"success":"true"}'),
        answer(b'{"success":1}'),
        answer(b"[true]"),
        answer(b""),
        b"SSH-2.0-OpenSSH_9.6\r\n\r\n",
    ],
    ids=["not-json", "status-500", "string-true", "number-1", "not-an-object", "empty", "not-http"],
)
async def test_captcha_fails_on_an_answer_that_is_not_a_plain_success(
    session: aiohttp.ClientSession, serve: Serve, raw: bytes, caplog: pytest.LogCaptureFixture
) -> None:
    server = await serve(answering(raw))
    with caplog.at_level(logging.DEBUG):
        assert await verifier(session, server.url).verify("token-value", None) is False
    assert "token-value" not in caplog.text and "s3" not in caplog.text


@pytest.mark.parametrize("url", ["ftp://example.com/x", "siteverify", "http:///path"])
async def test_captcha_refuses_a_verify_url_that_is_not_http(
    session: aiohttp.ClientSession, url: str
) -> None:
    with pytest.raises(ValueError, match="verify URL"):
        verifier(session, url)
