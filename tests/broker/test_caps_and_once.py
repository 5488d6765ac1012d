"""Per-client admission in the scripts: the cap on open images (next to the cap on
open jobs, tests/broker/test_open_jobs.py), and adds under an Idempotency-Key: the
key's first job is answered again instead of a second one, atomically with the add."""

from __future__ import annotations

import asyncio

import pytest

from broker.admission import find_once
from broker.errors import IdempotencyConflict, TooManyOpenImages, TooManyOpenJobs
from broker.queue import Queue
from broker.states import JobState
from tests.broker.helpers import check_indexes, scores, token

CLIENT = "198.51.100.4"


async def add(q: Queue, i: int, number: int, max_images: int = 10) -> None:
    await q.add(token(i), "a cat", number, 768, 576, client=CLIENT, max_images=max_images)


async def test_caps_add_refuses_a_job_that_would_pass_the_client_s_images(queue: Queue) -> None:
    await add(queue, 1, 6)
    await add(queue, 2, 4)
    with pytest.raises(TooManyOpenImages):
        await add(queue, 3, 1)
    assert await queue.redis.exists(queue.keys.job(token(3))) == 0
    assert await scores(queue.redis, queue.keys.clients) == {CLIENT: 10}

    await queue.cancel(token(1))  # a finished job's images leave the sum
    await add(queue, 3, 6)
    assert await scores(queue.redis, queue.keys.clients) == {CLIENT: 10}
    await check_indexes(queue)


async def test_caps_hold_refuses_before_the_captcha_is_spent(queue: Queue) -> None:
    await add(queue, 1, 8)
    with pytest.raises(TooManyOpenImages):
        await queue.hold_client_slot(CLIENT, token(2), 0, 10_000, number=4, max_images=10)
    await queue.hold_client_slot(CLIENT, token(2), 0, 10_000, number=2, max_images=10)
    with pytest.raises(TooManyOpenJobs):
        await queue.hold_client_slot(CLIENT, token(3), 2, 10_000, number=1, max_images=10)


async def test_caps_sum_of_a_job_gone_is_counted_again_at_the_cap(queue: Queue) -> None:
    await add(queue, 1, 9)
    await queue.redis.delete(queue.keys.job(token(1)))  # its hash is lost
    await add(queue, 2, 9)  # at the cap: the client's sum is counted again first
    assert await scores(queue.redis, queue.keys.clients) == {CLIENT: 9}


async def test_once_answers_the_first_job_of_a_key_again(queue: Queue) -> None:
    once = ("d" * 40, "request-1")
    first = await queue.add(token(1), "a cat", 1, 768, 576, client=CLIENT, once=once)
    again = await queue.add(token(2), "a cat", 1, 768, 576, client=CLIENT, once=once)

    assert (first.token, first.replayed) == (token(1), False)
    assert (again.token, again.created_ms, again.replayed) == (token(1), first.created_ms, True)
    assert await queue.redis.exists(queue.keys.job(token(2))) == 0
    assert await find_once(queue, once[0], once[1]) == again
    ttl = await queue.redis.pttl(queue.keys.idem_for(once[0]))
    assert 23 * 3600_000 < ttl <= 24 * 3600_000
    await check_indexes(queue)


async def test_once_with_another_request_under_the_same_key_is_refused(queue: Queue) -> None:
    await queue.add(token(1), "a cat", 1, 768, 576, once=("e" * 40, "request-1"))
    with pytest.raises(IdempotencyConflict):
        await queue.add(token(2), "a dog", 1, 768, 576, once=("e" * 40, "request-2"))
    with pytest.raises(IdempotencyConflict):
        await find_once(queue, "e" * 40, "request-2")
    assert await queue.redis.exists(queue.keys.job(token(2))) == 0


async def test_once_gives_back_the_slot_a_replay_held(queue: Queue) -> None:
    once = ("f" * 40, "request-1")
    await queue.add(token(1), "a cat", 1, 768, 576, client=CLIENT, max_open=2, once=once)
    await queue.hold_client_slot(CLIENT, token(2), 2, 10_000)
    await queue.add(token(2), "a cat", 1, 768, 576, client=CLIENT, max_open=2, once=once)

    assert await scores(queue.redis, queue.keys.client(CLIENT)) == {token(1): 0}


async def test_once_racing_adds_of_one_key_make_one_job(queue: Queue) -> None:
    once = ("a" * 40, "request-1")
    added = await asyncio.gather(
        *(queue.add(token(i), "a cat", 1, 768, 576, once=once) for i in range(10))
    )
    assert len({a.token for a in added}) == 1
    assert sum(not a.replayed for a in added) == 1
    assert (await queue.counts())["new"] == 1
    assert (await queue.status(added[0].token)).state is JobState.NEW
