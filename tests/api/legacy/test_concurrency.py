"""Racing callers through the real app. On the real engine this is the real check:
each request is its own EVALSHA on its own pooled connection, interleaved by the loop."""

from __future__ import annotations

import asyncio
from collections import Counter
from collections.abc import AsyncIterator

import httpx
import pytest
from redis.asyncio import Redis

from api.app import create_app
from api.settings import ApiSettings
from tests.conftest import BACKEND_SECRET

VALID = {"prompt": "hello world", "number": "1", "resolution": "768x576", "captcha": "good-1"}


async def add_job(client: httpx.AsyncClient) -> str:
    reply = await client.get("/addJob", params=VALID)
    assert reply.status_code == 200, reply.content
    token = reply.json()
    assert isinstance(token, str)
    return token


async def set_state(client: httpx.AsyncClient, token: str, state: str) -> bytes:
    params = {"token": token, "state": state, "secret": BACKEND_SECRET}
    return (await client.get("/setJobStatus", params=params)).content


async def next_job(client: httpx.AsyncClient) -> bytes:
    return (await client.get("/getNextJob", params={"secret": BACKEND_SECRET})).content


@pytest.fixture
async def peek_client(redis: Redis, settings: ApiSettings) -> AsyncIterator[httpx.AsyncClient]:
    """An app with reservations off (reservation_ms=0): the original's pure peek."""
    app = create_app(settings.model_copy(update={"reservation_ms": 0}), redis=redis)
    async with app.router.lifespan_context(app):
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://sdq.test") as http:
            yield http


async def test_concurrent_set_pending_gives_exactly_one_ok(client: httpx.AsyncClient) -> None:
    token = await add_job(client)
    replies = await asyncio.gather(*(set_state(client, token, "pending") for _ in range(50)))
    assert Counter(replies) == {b'"ok"\n': 1, b'"invalid state transition"\n': 49}


async def test_concurrent_set_complete_gives_exactly_one_ok(client: httpx.AsyncClient) -> None:
    token = await add_job(client)
    assert await set_state(client, token, "pending") == b'"ok"\n'
    replies = await asyncio.gather(*(set_state(client, token, "complete") for _ in range(50)))
    assert Counter(replies) == {b'"ok"\n': 1, b'"invalid state transition"\n': 49}


async def test_concurrent_next_job_callers_get_different_jobs(client: httpx.AsyncClient) -> None:
    tokens = {await add_job(client) for _ in range(8)}
    replies = await asyncio.gather(*(next_job(client) for _ in range(8)))
    handed_out = [httpx.Response(200, content=reply).json()["Token"] for reply in replies]
    assert set(handed_out) == tokens
    assert await next_job(client) == b'"no more jobs"\n'


async def test_concurrent_next_job_without_reservation_all_get_the_oldest(
    peek_client: httpx.AsyncClient,
) -> None:
    tokens = [await add_job(peek_client) for _ in range(8)]
    replies = await asyncio.gather(*(next_job(peek_client) for _ in range(8)))
    assert {httpx.Response(200, content=reply).json()["Token"] for reply in replies} == {tokens[0]}
