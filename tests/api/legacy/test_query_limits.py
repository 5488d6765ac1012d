"""Query strings longer than SDQ_MAX_QUERY_BYTES (16 KiB) are refused on the legacy paths
with 414 and a JSON string, before they are parsed; anything the contract allows is far
below the limit. In front of the app, uvicorn's httptools parser refuses request lines
of about 64 KiB with its own plain-text 400 (measured here, see docs/operations.md)."""

from __future__ import annotations

import socket
import threading
import time
from collections.abc import Iterator

import httpx
import pytest
import uvicorn
from pydantic import SecretStr
from redis.asyncio import Redis

from api.app import create_app
from api.settings import ApiSettings
from sdq.embedded_redis import EmbeddedRedis
from sdq.supervisor import free_port
from tests.conftest import BACKEND_SECRET

LIMIT = 16 * 1024
PATHS = {"/addJob": True, "/getJobStatus": True, "/getNextJob": False, "/setJobStatus": False}


async def call(client: httpx.AsyncClient, path: str, query: bytes) -> httpx.Response:
    """Sends the query bytes as they are (httpx would re-encode a params dict)."""
    return await client.get(httpx.URL(path, query=query))


def padded(query: str, size: int) -> bytes:
    """`query` plus an ignored parameter, `size` bytes in all."""
    filler = "&pad="
    return (query + filler + "x" * (size - len(query) - len(filler))).encode()


@pytest.mark.parametrize("path", list(PATHS))
async def test_query_longer_than_the_limit_is_414_with_a_json_string(
    client: httpx.AsyncClient, path: str
) -> None:
    reply = await call(client, path, padded(f"secret={BACKEND_SECRET}", LIMIT + 1))
    assert (reply.status_code, reply.content) == (414, b'"query string too long"\n')
    assert reply.headers["content-type"] == "application/json"
    assert ("access-control-allow-origin" in reply.headers) == PATHS[path]


async def test_query_of_exactly_the_limit_is_served(client: httpx.AsyncClient) -> None:
    reply = await call(client, "/getJobStatus", padded("token=" + "0" * 32, LIMIT))
    assert (reply.status_code, reply.content) == (404, b'"token not found"\n')


async def test_query_the_largest_valid_add_job_fits_under_the_limit(
    client: httpx.AsyncClient,
) -> None:
    prompt = "".join(f"%{byte:02X}" for byte in b"a" * 500)  # 500 bytes, each %-escaped
    query = f"prompt={prompt}&number=16&resolution=1024x576&captcha=good-{'c' * 4995}"
    assert len(query) < LIMIT
    reply = await call(client, "/addJob", query.encode())
    assert reply.status_code == 200


async def test_query_limit_is_configurable(redis: Redis, settings: ApiSettings) -> None:
    app = create_app(settings.model_copy(update={"max_query_bytes": 2048}), redis=redis)
    async with app.router.lifespan_context(app):
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://sdq.test") as client:
            assert (await call(client, "/getNextJob", padded("", 2049))).status_code == 414
            assert (await call(client, "/getNextJob", padded("", 2048))).status_code == 400


def test_query_limit_setting_refuses_a_tiny_limit() -> None:
    with pytest.raises(ValueError, match="max_query_bytes"):
        ApiSettings(backend_secrets="s" * 32, insecure_skip_captcha=True, max_query_bytes=10)


@pytest.fixture
def served(redis_engine: EmbeddedRedis, settings: ApiSettings) -> Iterator[int]:
    """The app under uvicorn with httptools (as `sdq api` runs it), on a free port."""
    own = settings.model_copy(update={"redis_url": SecretStr(redis_engine.url)})
    port = free_port()
    config = uvicorn.Config(
        create_app(own), port=port, http="httptools", log_level="critical", lifespan="on"
    )
    server = uvicorn.Server(config)
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 20
    while not server.started:
        assert time.monotonic() < deadline and thread.is_alive(), "uvicorn did not start"
        time.sleep(0.05)
    yield port
    server.should_exit = True
    thread.join(timeout=20)


def raw_get(port: int, target: bytes) -> bytes:
    with socket.create_connection(("127.0.0.1", port), timeout=10) as sock:
        sock.sendall(b"GET " + target + b" HTTP/1.1\r\nHost: sdq\r\nConnection: close\r\n\r\n")
        answer = b""
        while chunk := sock.recv(65536):
            answer += chunk
    return answer


@pytest.mark.slow
def test_query_limits_through_uvicorn_httptools(served: int) -> None:
    ours = raw_get(served, b"/getJobStatus?" + padded("token=x", 20_000))
    assert ours.startswith(b"HTTP/1.1 414 ")
    assert ours.endswith(b'\r\n\r\n"query string too long"\n')
    theirs = raw_get(served, b"/getJobStatus?" + padded("token=x", 200_000))
    assert theirs.startswith(b"HTTP/1.1 400 ")  # uvicorn's own answer; the app never saw it
