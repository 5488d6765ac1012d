"""/getJobStatus through the real app, on fakeredis and on a real engine."""

from __future__ import annotations

import re

import httpx
from redis.asyncio import Redis

from broker.queue import Queue
from tests.conftest import BACKEND_SECRET

VALID = {"prompt": "hello world", "number": "1", "resolution": "768x576", "captcha": "good-1"}


async def add_job(client: httpx.AsyncClient) -> str:
    reply = await client.get("/addJob", params=VALID)
    assert reply.status_code == 200, reply.content
    token = reply.json()
    assert isinstance(token, str)
    return token


async def status(client: httpx.AsyncClient, token: str) -> dict[str, object]:
    reply = await client.get("/getJobStatus", params={"token": token})
    assert reply.status_code == 200, reply.content
    body = reply.json()
    assert isinstance(body, dict)
    return body


async def set_state(client: httpx.AsyncClient, token: str, state: str) -> None:
    params = {"token": token, "state": state, "secret": BACKEND_SECRET}
    reply = await client.get("/setJobStatus", params=params)
    assert reply.content == b'"ok"\n'


async def redis_now_ms(redis: Redis) -> int:
    seconds, micros = await redis.time()
    return int(seconds) * 1000 + int(micros) // 1000


async def add_at(queue: Queue, created_ms: int, index: int) -> str:
    """A job with a chosen creation time (as an import would), for exact QueueLengths."""
    token = f"{index:032x}"
    await queue.add_job(token, "hello", 1, 768, 576, created_ms=created_ms)
    return token


def assert_reply(reply: httpx.Response, status_code: int, body: str) -> None:
    sent = reply.request.url.query[:120]
    assert (reply.status_code, reply.content) == (status_code, f'"{body}"\n'.encode()), sent


async def test_get_job_status_of_a_new_job_is_compact_in_key_order(
    client: httpx.AsyncClient,
) -> None:
    token = await add_job(client)
    reply = await client.get("/getJobStatus", params={"token": token})
    assert reply.status_code == 200
    pattern = rb'\{"Token":"%s","State":"new","Age":\d+(\.\d{1,3})?,"QueueLength":0\}\n'
    assert re.fullmatch(pattern % token.encode(), reply.content), reply.content


async def test_get_job_status_age_is_seconds_with_millisecond_resolution(
    client: httpx.AsyncClient, queue: Queue, redis: Redis
) -> None:
    token = await add_at(queue, await redis_now_ms(redis) - 61_618, 1)
    reply = await client.get("/getJobStatus", params={"token": token})
    age = reply.json()["Age"]
    assert isinstance(age, float | int)
    assert 61.618 <= age < 61.618 + 60
    assert round(age, 3) == age
    assert re.search(rb'"Age":61\.\d{1,3},', reply.content)


async def test_get_job_status_age_of_a_whole_second_is_an_integer_number(
    client: httpx.AsyncClient, queue: Queue
) -> None:
    token = await add_at(queue, 0, 1)  # created at the epoch: Age is "now" in seconds
    age = (await status(client, token))["Age"]
    assert isinstance(age, float | int) and age > 1_600_000_000


async def test_get_job_status_follows_the_state(client: httpx.AsyncClient) -> None:
    token = await add_job(client)
    assert (await status(client, token))["State"] == "new"
    await set_state(client, token, "pending")
    assert (await status(client, token))["State"] == "pending"
    await set_state(client, token, "complete")
    assert (await status(client, token))["State"] == "complete"


async def test_get_job_status_queue_length_counts_older_unfinished_jobs(
    client: httpx.AsyncClient, queue: Queue
) -> None:
    a, b, c, d = [await add_at(queue, 1_000 + i, i) for i in range(4)]
    lengths = {token: (await status(client, token))["QueueLength"] for token in (a, b, c, d)}
    assert lengths == {a: 0, b: 1, c: 2, d: 3}


async def test_get_job_status_queue_length_counts_pending_jobs(
    client: httpx.AsyncClient, queue: Queue
) -> None:
    a, b = [await add_at(queue, 1_000 + i, i) for i in range(2)]
    await set_state(client, a, "pending")
    assert (await status(client, b))["QueueLength"] == 1


async def test_get_job_status_queue_length_falls_as_older_jobs_complete(
    client: httpx.AsyncClient, queue: Queue
) -> None:
    a, b, c = [await add_at(queue, 1_000 + i, i) for i in range(3)]
    assert (await status(client, c))["QueueLength"] == 2
    await set_state(client, b, "pending")
    await set_state(client, b, "complete")
    assert (await status(client, c))["QueueLength"] == 1
    await set_state(client, a, "pending")
    await set_state(client, a, "complete")
    assert (await status(client, c))["QueueLength"] == 0


async def test_get_job_status_queue_length_ignores_younger_jobs(
    client: httpx.AsyncClient, queue: Queue
) -> None:
    a = await add_at(queue, 1_000, 1)
    for i in range(2, 5):
        await add_at(queue, 1_000 + i, i)
    assert (await status(client, a))["QueueLength"] == 0


async def test_get_job_status_queue_length_of_a_finished_job_still_counts_older_ones(
    client: httpx.AsyncClient, queue: Queue
) -> None:
    a, _, c = [await add_at(queue, 1_000 + i, i) for i in range(3)]
    await set_state(client, c, "pending")
    assert (await status(client, c))["QueueLength"] == 2
    await set_state(client, c, "complete")
    finished = await status(client, c)
    assert (finished["State"], finished["QueueLength"]) == ("complete", 2)
    await set_state(client, a, "pending")
    await set_state(client, a, "complete")
    assert (await status(client, c))["QueueLength"] == 1
    assert (await status(client, a))["QueueLength"] == 0


async def test_get_job_status_queue_length_excludes_jobs_of_the_same_millisecond(
    client: httpx.AsyncClient, queue: Queue
) -> None:
    a, b = [await add_at(queue, 5_000, i) for i in range(2)]
    assert (await status(client, a))["QueueLength"] == 0
    assert (await status(client, b))["QueueLength"] == 0  # created strictly earlier only


async def test_get_job_status_missing_token(client: httpx.AsyncClient) -> None:
    assert_reply(await client.get("/getJobStatus"), 400, "missing token")
    assert_reply(await client.get("/getJobStatus?token=+%E3%80%80"), 400, "missing token")


async def test_get_job_status_wrong_size_for_token(client: httpx.AsyncClient) -> None:
    for token in ["123", "a" * 31, "a" * 33, "é" * 17, "é" * 15 + "a"]:
        reply = await client.get("/getJobStatus", params={"token": token})
        assert_reply(reply, 400, "wrong size for token")


async def test_get_job_status_matches_the_original_failure_example(
    client: httpx.AsyncClient,
) -> None:
    reply = await client.get("/getJobStatus?token=123")
    assert_reply(reply, 400, "wrong size for token")
    assert reply.headers["content-length"] == "23"


async def test_get_job_status_token_not_found(client: httpx.AsyncClient) -> None:
    for token in [
        "45b825dd9eb2e9602749ac4b74000000",  # well formed, unknown
        "é" * 16,  # 32 bytes: the right size, never a token
        "45B825DD9EB2E9602749AC4B74B3D9D9",  # upper-case hex
        "z" * 32,
        "\x1c" * 32,
        "%" * 32,
    ]:
        reply = await client.get("/getJobStatus", params={"token": token})
        assert_reply(reply, 404, "token not found")
        assert reply.headers["content-length"] == "18"


async def test_get_job_status_upper_case_of_a_real_token_is_not_found(
    client: httpx.AsyncClient,
) -> None:
    token = await add_job(client)
    reply = await client.get("/getJobStatus", params={"token": token.upper()})
    assert_reply(reply, 404, "token not found")


async def test_get_job_status_token_is_trimmed(client: httpx.AsyncClient) -> None:
    token = await add_job(client)
    assert (await status(client, f"\u00a0 {token}\t\n"))["Token"] == token
