"""/getNextJob through the real app, on fakeredis and on a real engine."""

from __future__ import annotations

from collections.abc import AsyncIterator

import httpx
import pytest
from redis.asyncio import Redis

from api.app import create_app
from api.settings import ApiSettings
from broker.queue import Queue
from tests.conftest import BACKEND_SECRET, ROTATED_SECRET

VALID = {"prompt": "hello world", "number": "1", "resolution": "768x576", "captcha": "good-1"}


async def add_job(client: httpx.AsyncClient, prompt: str = "hello world") -> str:
    reply = await client.get("/addJob", params={**VALID, "prompt": prompt})
    assert reply.status_code == 200, reply.content
    token = reply.json()
    assert isinstance(token, str)
    return token


async def next_token(client: httpx.AsyncClient) -> str | None:
    reply = await client.get("/getNextJob", params={"secret": BACKEND_SECRET})
    if reply.status_code == 404:
        return None
    assert reply.status_code == 200, reply.content
    token = reply.json()["Token"]
    assert isinstance(token, str)
    return token


def assert_reply(reply: httpx.Response, status_code: int, body: str) -> None:
    assert (reply.status_code, reply.content) == (status_code, f'"{body}"\n'.encode())


@pytest.fixture
async def peek_client(redis: Redis, settings: ApiSettings) -> AsyncIterator[httpx.AsyncClient]:
    """An app with reservations off (reservation_ms=0): the original's pure peek."""
    app = create_app(settings.model_copy(update={"reservation_ms": 0}), redis=redis)
    async with app.router.lifespan_context(app):
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://sdq.test") as http:
            yield http


async def test_get_next_job_missing_secret(client: httpx.AsyncClient) -> None:
    reply = await client.get("/getNextJob")
    assert_reply(reply, 400, "missing secret")
    assert reply.headers["content-length"] == "17"
    assert_reply(await client.get("/getNextJob?secret=+%09"), 400, "missing secret")


async def test_get_next_job_wrong_secret(client: httpx.AsyncClient) -> None:
    await add_job(client)
    for secret in ["wrong", BACKEND_SECRET[:-1], BACKEND_SECRET + "x", BACKEND_SECRET.upper()]:
        reply = await client.get("/getNextJob", params={"secret": secret})
        assert_reply(reply, 400, "wrong secret")
    reply = await client.get("/getNextJob", headers={"Authorization": "Bearer nope"})
    assert_reply(reply, 400, "wrong secret")


async def test_get_next_job_accepts_every_configured_secret(client: httpx.AsyncClient) -> None:
    for secret in [BACKEND_SECRET, ROTATED_SECRET, f" {BACKEND_SECRET}\u3000"]:
        token = await add_job(client)
        reply = await client.get("/getNextJob", params={"secret": secret})
        assert (reply.status_code, reply.json()["Token"]) == (200, token)


async def test_get_next_job_accepts_the_secret_as_a_bearer_token(
    client: httpx.AsyncClient,
) -> None:
    for scheme, secret in [("Bearer", ROTATED_SECRET), ("bearer", BACKEND_SECRET)]:
        token = await add_job(client)
        headers = {"Authorization": f"{scheme} {secret}"}
        reply = await client.get("/getNextJob", headers=headers)
        assert (reply.status_code, reply.json()["Token"]) == (200, token)


async def test_get_next_job_other_authorization_schemes_are_no_secret(
    client: httpx.AsyncClient,
) -> None:
    reply = await client.get("/getNextJob", headers={"Authorization": f"Basic {BACKEND_SECRET}"})
    assert_reply(reply, 400, "missing secret")


async def test_get_next_job_no_more_jobs(client: httpx.AsyncClient) -> None:
    reply = await client.get("/getNextJob", params={"secret": BACKEND_SECRET})
    assert_reply(reply, 404, "no more jobs")
    assert reply.headers["content-length"] == "15"


async def test_get_next_job_body_is_compact_with_keys_in_order(client: httpx.AsyncClient) -> None:
    reply = await client.get(
        "/addJob?prompt=hello%20world&number=1&resolution=768x576&captcha=good-1"
    )
    token = reply.json()
    reply = await client.get("/getNextJob", params={"secret": BACKEND_SECRET})
    assert reply.content == (
        b'{"Token":"%s","Number":1,"Width":768,"Height":576,"Prompt":"hello world"}\n'
        % token.encode()
    )
    assert reply.headers["content-length"] == "104"


async def test_get_next_job_hands_out_jobs_first_in_first_out(client: httpx.AsyncClient) -> None:
    tokens = [await add_job(client) for _ in range(4)]
    assert [await next_token(client) for _ in range(4)] == tokens
    assert await next_token(client) is None  # the rest are reserved for their callers


async def test_get_next_job_orders_by_creation_time_then_insertion(
    client: httpx.AsyncClient, queue: Queue
) -> None:
    late, early_1, early_2 = (f"{i:032x}" for i in range(1, 4))
    await queue.add_job(late, "late", 1, 768, 576, created_ms=2_000)
    await queue.add_job(early_1, "early 1", 1, 768, 576, created_ms=1_000)
    await queue.add_job(early_2, "early 2", 1, 768, 576, created_ms=1_000)
    assert [await next_token(client) for _ in range(3)] == [early_1, early_2, late]


async def test_get_next_job_leaves_the_state_new(client: httpx.AsyncClient) -> None:
    token = await add_job(client)
    assert await next_token(client) == token
    reply = await client.get("/getJobStatus", params={"token": token})
    assert reply.json()["State"] == "new"
    assert reply.json()["QueueLength"] == 0


async def test_get_next_job_skips_jobs_set_pending_or_complete(client: httpx.AsyncClient) -> None:
    first, second, third = [await add_job(client) for _ in range(3)]
    for token, state in [(first, "pending"), (second, "pending"), (second, "complete")]:
        params = {"token": token, "state": state, "secret": BACKEND_SECRET}
        assert (await client.get("/setJobStatus", params=params)).status_code == 200
    assert await next_token(client) == third


async def test_get_next_job_without_reservation_is_a_pure_peek(
    peek_client: httpx.AsyncClient,
) -> None:
    first = await add_job(peek_client)
    await add_job(peek_client)
    assert [await next_token(peek_client) for _ in range(3)] == [first] * 3


async def test_get_next_job_without_reservation_moves_on_once_set_pending(
    peek_client: httpx.AsyncClient,
) -> None:
    first, second = await add_job(peek_client), await add_job(peek_client)
    params = {"token": first, "state": "pending", "secret": BACKEND_SECRET}
    assert (await peek_client.get("/setJobStatus", params=params)).status_code == 200
    assert await next_token(peek_client) == second
