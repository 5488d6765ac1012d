"""get_status and counts: QueueLength is the number of jobs created strictly earlier
that are new or pending, whatever the job's own state; the clock is the server's."""

from __future__ import annotations

import pytest

from broker.errors import JobNotFound
from broker.queue import Queue
from broker.states import JobState
from tests.broker.helpers import add, server_ms, token, tuned


async def test_status_of_an_unknown_token_is_not_found(queue: Queue) -> None:
    with pytest.raises(JobNotFound):
        await queue.status(token(404))


async def test_status_queue_length_counts_new_and_pending_jobs_created_earlier(
    queue: Queue,
) -> None:
    for i in range(5):
        await add(queue, i, created_ms=1_000 + i)
    await queue.set_state(token(1), JobState.PENDING)  # pending still counts
    attempt, _ = await queue.set_state(token(2), JobState.PENDING)
    await queue.set_state(token(2), JobState.COMPLETE, attempt)  # complete does not

    lengths = [(await queue.status(token(i))).queue_length for i in range(5)]

    assert lengths == [0, 1, 2, 2, 3]


async def test_status_queue_length_ignores_jobs_of_the_same_millisecond(queue: Queue) -> None:
    for i in range(3):
        await add(queue, i, created_ms=5_000)
    await add(queue, 3, created_ms=5_001)

    lengths = [(await queue.status(token(i))).queue_length for i in range(4)]

    assert lengths == [0, 0, 0, 3]


async def test_status_queue_length_is_shown_whatever_the_jobs_own_state(queue: Queue) -> None:
    for i in range(4):
        await add(queue, i, created_ms=1_000 + i)
    attempt, _ = await queue.set_state(token(3), JobState.PENDING)
    await queue.set_state(token(3), JobState.COMPLETE, attempt)
    failing = tuned(queue, max_attempts=1)
    attempt, _ = await failing.set_state(token(2), JobState.PENDING)
    assert await failing.release(token(2), attempt, "broken") is JobState.FAILED

    complete, failed = await queue.status(token(3)), await queue.status(token(2))

    assert (complete.state, complete.queue_length) == (JobState.COMPLETE, 2)
    assert (failed.state, failed.queue_length) == (JobState.FAILED, 2)


async def test_status_queue_length_counts_reserved_jobs(queue: Queue) -> None:
    await add(queue, 0, created_ms=1_000)
    await add(queue, 1, created_ms=2_000)
    assert await queue.next_job() is not None  # reserves job 0; it is still new

    assert (await queue.status(token(1))).queue_length == 1


async def test_status_times_come_from_the_redis_clock(queue: Queue) -> None:
    before = await server_ms(queue.redis)
    created = await add(queue, 1)
    status = await queue.status(created)
    after = await server_ms(queue.redis)

    assert before <= status.created_ms <= status.now_ms <= after
    assert status.age_ms == status.now_ms - status.created_ms


async def test_status_age_of_an_old_job_is_measured_on_the_redis_clock(queue: Queue) -> None:
    now = await server_ms(queue.redis)
    await add(queue, 1, created_ms=now - 3_600_000)

    status = await queue.status(token(1))

    assert 3_600_000 <= status.age_ms <= 3_600_000 + (await server_ms(queue.redis) - now)


async def test_counts_give_jobs_per_state(queue: Queue) -> None:
    for i in range(6):
        await add(queue, i)
    await queue.next_job()  # job 0: reserved, still new
    await queue.set_state(token(1), JobState.PENDING)
    claim = await queue.claim("w")  # job 2 (job 0 is reserved)
    assert claim is not None and claim.job.token == token(2)
    await queue.complete(claim.job.token, claim.fence)
    failing = tuned(queue, max_attempts=1)
    claim = await failing.claim("w")
    assert claim is not None
    await failing.release(claim.job.token, claim.fence, "broken")

    counts = await queue.counts()

    assert (counts["new"], counts["pending"]) == (3, 1)  # jobs 0 (reserved), 4, 5; job 1
    assert (counts["added"], counts["complete"], counts["failed"]) == (6, 1, 1)


async def test_counts_of_an_empty_queue_are_zero(queue: Queue) -> None:
    assert await queue.counts() == {"new": 0, "pending": 0}
