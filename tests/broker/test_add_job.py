"""add_job: a new job at the tail of the queue; FIFO by creation time, ties in
insertion order."""

from __future__ import annotations

import pytest

from broker.errors import TokenExists
from broker.queue import Queue
from broker.states import JobState
from tests.broker.helpers import add, check_indexes, drain, server_ms, token


async def test_add_job_stores_the_job_as_new(queue: Queue) -> None:
    created = await queue.add_job(token(1), "a red fox", 4, 768, 576)

    status = await queue.status(token(1))
    assert status.state is JobState.NEW
    assert (status.created_ms, status.number, status.width, status.height) == (created, 4, 768, 576)
    assert (status.attempts, status.progress, status.queue_length) == (0, 0, 0)
    record = await queue.redis.hgetall(queue.keys.job(token(1)))
    assert record["prompt"] == "a red fox"
    await check_indexes(queue)


async def test_add_job_refuses_a_token_that_exists(queue: Queue) -> None:
    await queue.add_job(token(1), "first", 1, 576, 576)

    with pytest.raises(TokenExists):
        await queue.add_job(token(1), "second", 2, 768, 576)

    record = await queue.redis.hgetall(queue.keys.job(token(1)))
    assert (record["prompt"], record["number"]) == ("first", "1")
    assert (await queue.counts())["added"] == 1


async def test_add_job_refuses_a_token_of_a_finished_job(queue: Queue) -> None:
    await add(queue, 1)
    claim = await queue.claim("w")
    assert claim is not None
    await queue.complete(claim.job.token, claim.fence)

    with pytest.raises(TokenExists):
        await add(queue, 1)


async def test_add_job_serves_jobs_in_insertion_order_when_added_back_to_back(
    queue: Queue,
) -> None:
    # Many of these share a millisecond: ties must keep insertion order.
    tokens = [await add(queue, i) for i in range(40)]

    assert await drain(queue) == tokens


async def test_add_job_orders_by_creation_time_then_insertion(queue: Queue) -> None:
    now = await server_ms(queue.redis)
    # Explicit times, inserted out of order, with ties.
    plan = [(1, now - 10), (2, now - 30), (3, now - 10), (4, now - 30), (5, now - 20)]
    for i, created in plan:
        await add(queue, i, created_ms=created)

    assert await drain(queue) == [token(i) for i in (2, 4, 5, 1, 3)]


async def test_add_job_with_an_older_time_goes_ahead_of_younger_jobs(queue: Queue) -> None:
    await add(queue, 1)
    await add(queue, 2)
    await add(queue, 3, created_ms=1_000)

    nxt = await queue.next_job()

    assert nxt is not None and nxt.token == token(3)
    assert (await queue.status(token(1))).queue_length == 1


async def test_add_job_keeps_an_explicit_creation_time(queue: Queue) -> None:
    created = await queue.add_job(token(1), "imported", 1, 576, 576, created_ms=1_234_567)

    assert created == 1_234_567
    assert (await queue.status(token(1))).created_ms == 1_234_567
