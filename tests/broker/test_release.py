"""release: a worker gives its claim back; the attempt counts, the job goes back to the
head of the queue or, at max_attempts, to failed. Fenced by the attempt id."""

from __future__ import annotations

import pytest

from broker.errors import InvalidTransition, JobNotFound, StaleClaim
from broker.queue import Queue
from broker.states import JobState
from tests.broker.helpers import add, check_indexes, token, tuned


async def test_release_puts_the_job_back_at_the_head(queue: Queue) -> None:
    q = tuned(queue, max_attempts=3)
    for i in range(3):
        await add(q, i)
    claim = await q.claim("w")
    assert claim is not None

    assert await q.release(claim.job.token, claim.fence, "out of memory") is JobState.NEW

    status = await q.status(token(0))
    assert (status.state, status.attempts, status.queue_length) == (JobState.NEW, 1, 0)
    record = await q.redis.hgetall(q.keys.job(token(0)))
    assert record["last_error"] == "out of memory"
    nxt = await q.next_job()
    assert nxt is not None and nxt.token == token(0)
    await check_indexes(q)


async def test_release_at_max_attempts_fails_the_job(queue: Queue) -> None:
    q = tuned(queue, max_attempts=2, retention_s=60)
    await add(q, 1)

    outcomes = []
    for _ in range(2):
        claim = await q.claim("w")
        assert claim is not None
        outcomes.append(await q.release(claim.job.token, claim.fence, "broken"))

    assert outcomes == [JobState.NEW, JobState.FAILED]
    status = await q.status(token(1))
    assert (status.state, status.attempts) == (JobState.FAILED, 2)
    assert 0 < await q.redis.pttl(q.keys.job(token(1))) <= 60_000
    assert await q.claim("w") is None
    await check_indexes(q)


async def test_release_with_a_stale_attempt_is_refused(queue: Queue) -> None:
    await add(queue, 1)
    old = await queue.claim("a")
    assert old is not None
    await queue.release(old.job.token, old.fence, "lost")
    current = await queue.claim("b")
    assert current is not None

    with pytest.raises(StaleClaim):
        await queue.release(old.job.token, old.fence, "late")

    status = await queue.status(token(1))
    assert (status.state, status.attempts) == (JobState.PENDING, 1)


async def test_release_cuts_a_long_reason(queue: Queue) -> None:
    await add(queue, 1)
    claim = await queue.claim("w")
    assert claim is not None

    await queue.release(claim.job.token, claim.fence, "x" * 5_000)

    assert await queue.redis.hget(queue.keys.job(token(1)), "last_error") == "x" * 200


@pytest.mark.parametrize("source", ["new", "complete"])
async def test_release_of_a_job_that_is_not_pending_is_refused(queue: Queue, source: str) -> None:
    await add(queue, 1)
    if source == "complete":
        attempt, _ = await queue.set_state(token(1), JobState.PENDING)
        await queue.complete(token(1), attempt)

    with pytest.raises(InvalidTransition):
        await queue.release(token(1), 1, "no")


async def test_release_of_an_unknown_token_is_not_found(queue: Queue) -> None:
    with pytest.raises(JobNotFound):
        await queue.release(token(404), 1, "no")
