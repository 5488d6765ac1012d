"""Retention: complete and failed jobs are kept for retention_s and leave every ordered
set at once, so no ordered set ever keeps a member whose job is gone."""

from __future__ import annotations

import random
from contextlib import suppress

import pytest

from broker.errors import InvalidTransition, JobNotFound, StaleClaim, TokenExists
from broker.queue import Queue
from broker.states import JobState
from tests.broker.helpers import (
    add,
    check_indexes,
    eventually,
    job_hashes,
    token,
    tuned,
)


async def test_retention_complete_job_gets_a_ttl_and_leaves_every_index(queue: Queue) -> None:
    q = tuned(queue, retention_s=3_600)
    await add(q, 1)
    attempt, _ = await q.set_state(token(1), JobState.PENDING)

    await q.complete(token(1), attempt)

    assert 3_590_000 < await q.redis.pttl(q.keys.job(token(1))) <= 3_600_000
    await check_indexes(q)
    for index in (q.keys.waiting, q.keys.active, q.keys.reserved, q.keys.leases):
        assert await q.redis.zcard(index) == 0


async def test_retention_failed_job_gets_a_ttl(queue: Queue) -> None:
    q = tuned(queue, retention_s=120, max_attempts=1)
    await add(q, 1)
    claim = await q.claim("w")
    assert claim is not None

    await q.release(claim.job.token, claim.fence, "broken")

    assert 110_000 < await q.redis.pttl(q.keys.job(token(1))) <= 120_000
    await check_indexes(q)


async def test_retention_live_jobs_never_expire(queue: Queue) -> None:
    await add(queue, 1)
    await add(queue, 2)
    await queue.next_job()
    await add(queue, 3)
    await queue.set_state(token(3), JobState.PENDING)

    assert [await queue.redis.pttl(queue.keys.job(token(i))) for i in (1, 2, 3)] == [-1, -1, -1]


async def test_retention_expired_job_is_gone(queue: Queue) -> None:
    q = tuned(queue, retention_s=1)
    await add(q, 1)
    await add(q, 2)
    attempt, _ = await q.set_state(token(1), JobState.PENDING)
    await q.complete(token(1), attempt)

    async def expired() -> bool:
        return not await q.redis.exists(q.keys.job(token(1)))

    await eventually(expired)

    with pytest.raises(JobNotFound):
        await q.status(token(1))
    assert (await q.status(token(2))).queue_length == 0
    await check_indexes(q)


async def random_operation(q: Queue, rng: random.Random, n: int) -> None:
    """One of the queue's operations on a random job; refusals are part of the game,
    but a script error (StorageUnavailable) is not."""
    t = token(rng.randrange(n))
    op = rng.randrange(8)
    with suppress(JobNotFound, InvalidTransition, StaleClaim, TokenExists):
        if op == 0:
            await add(q, rng.randrange(n, 2 * n), created_ms=rng.choice([None, 1_000, 2_000]))
        elif op == 1:
            await q.next_job()
        elif op == 2:
            await q.set_state(t, JobState.PENDING)
        elif op == 3:
            await q.set_state(t, JobState.COMPLETE)
        elif op == 4 and (claim := await q.claim("w", lease_ms=rng.choice([1, 60_000]))):
            if rng.random() < 0.5:
                await q.complete(claim.job.token, claim.fence)
        elif op == 5 and (claim := await q.claim("w", lease_ms=60_000)):
            await q.release(claim.job.token, claim.fence, "random")
        elif op == 6:
            await q.renew_lease(t, rng.randrange(1, 4), lease_ms=rng.choice([1, 60_000]))
        else:
            await q.requeue_expired()


async def test_retention_indexes_hold_only_live_jobs_after_many_operations(queue: Queue) -> None:
    q = tuned(queue, retention_s=1, max_attempts=2, reservation_ms=5, sweep_limit=3)
    rng = random.Random(20240611)
    n = 25
    for i in range(n):
        await add(q, i, created_ms=rng.choice([None, 1_000, 1_500]))

    for step in range(300):
        await random_operation(q, rng, n)
        if step % 25 == 0:
            await check_indexes(q)
    await check_indexes(q)

    async def terminal_jobs_expired() -> bool:
        jobs = await job_hashes(q)
        return all(job["state"] in ("new", "pending") for job in jobs.values())

    await eventually(terminal_jobs_expired)
    await check_indexes(q)
    states = {job["state"] for job in (await job_hashes(q)).values()}
    assert states <= {"new", "pending"}
