"""set_state (/setJobStatus): new -> pending and pending -> complete, nothing else;
attempt ids fence a claim that was superseded."""

from __future__ import annotations

import math

import pytest

from broker.errors import InvalidTransition, JobNotFound, StaleClaim
from broker.queue import Queue
from broker.states import JobState
from tests.broker.helpers import add, check_indexes, server_ms, token, tuned

ALLOWED = {
    ("new", JobState.PENDING),
    ("reserved", JobState.PENDING),
    ("pending", JobState.COMPLETE),
}
SOURCES = ["new", "reserved", "pending", "complete", "failed"]


async def job_in(queue: Queue, source: str) -> str:
    """Adds one job and brings it into `source` ('reserved' is new, handed out)."""
    t = await add(queue, 1)
    if source == "reserved":
        assert await queue.next_job() is not None
    elif source != "new":
        attempt, _ = await queue.set_state(t, JobState.PENDING)
        if source == "complete":
            await queue.set_state(t, JobState.COMPLETE, attempt)
        elif source == "failed":
            assert await tuned(queue, max_attempts=1).release(t, attempt, "x") is JobState.FAILED
    return t


@pytest.mark.parametrize("source", SOURCES)
@pytest.mark.parametrize("target", list(JobState))
async def test_set_state_allows_only_the_legacy_transitions(
    queue: Queue, source: str, target: JobState
) -> None:
    t = await job_in(queue, source)
    before = await queue.redis.hgetall(queue.keys.job(t))

    if (source, target) in ALLOWED:
        await queue.set_state(t, target)
        assert (await queue.status(t)).state is target
    else:
        with pytest.raises(InvalidTransition):
            await queue.set_state(t, target)
        assert await queue.redis.hgetall(queue.keys.job(t)) == before
    await check_indexes(queue)


@pytest.mark.parametrize("target", [JobState.PENDING, JobState.COMPLETE])
async def test_set_state_of_an_unknown_token_is_not_found(queue: Queue, target: JobState) -> None:
    with pytest.raises(JobNotFound):
        await queue.set_state(token(404), target)


async def test_set_state_pending_twice_is_refused(queue: Queue) -> None:
    t = await add(queue, 1)
    await queue.set_state(t, JobState.PENDING)

    with pytest.raises(InvalidTransition):
        await queue.set_state(t, JobState.PENDING)


async def test_set_state_pending_takes_the_job_off_the_waiting_line(queue: Queue) -> None:
    t = await add(queue, 1)
    await queue.set_state(t, JobState.PENDING)

    assert await queue.next_job() is None
    assert await queue.claim("w") is None


async def test_set_state_pending_gives_a_lease_sized_to_the_work(queue: Queue) -> None:
    base, per_mp = 60_000, 30_000
    q = tuned(queue, lease_base_ms=base, lease_per_megapixel_ms=per_mp)
    small = await add(q, 1, number=1, size=(576, 576))
    big = await add(q, 2, number=16, size=(1024, 576))

    leases = {}
    for t in (small, big):
        before = await server_ms(q.redis)
        _, until = await q.set_state(t, JobState.PENDING)
        after = await server_ms(q.redis)
        leases[t] = (until - after, until - before)
        assert await q.redis.zscore(q.keys.leases, t) == until

    small_ms = base + math.ceil(per_mp * 1 * 576 * 576 / 1e6)  # 69,954 ms
    big_ms = base + math.ceil(per_mp * 16 * 1024 * 576 / 1e6)  # 343,118 ms
    assert leases[small][0] <= small_ms <= leases[small][1]
    assert leases[big][0] <= big_ms <= leases[big][1]


async def test_set_state_attempt_ids_count_every_claim(queue: Queue) -> None:
    q = tuned(queue, max_attempts=5)
    t = await add(q, 1)

    attempts = []
    for _ in range(3):
        attempt, _ = await q.set_state(t, JobState.PENDING)
        attempts.append(attempt)
        assert await q.release(t, attempt, "retry") is JobState.NEW

    assert attempts == [1, 2, 3]


async def test_set_state_complete_with_the_current_attempt_succeeds(queue: Queue) -> None:
    t = await add(queue, 1)
    attempt, _ = await queue.set_state(t, JobState.PENDING)

    assert await queue.set_state(t, JobState.COMPLETE, attempt) == (attempt, 0)
    assert (await queue.status(t)).state is JobState.COMPLETE


async def test_set_state_complete_with_a_stale_attempt_is_refused(queue: Queue) -> None:
    t = await add(queue, 1)
    old, _ = await queue.set_state(t, JobState.PENDING)
    await queue.release(t, old, "worker lost")
    new, _ = await queue.set_state(t, JobState.PENDING)

    with pytest.raises(StaleClaim):
        await queue.set_state(t, JobState.COMPLETE, old)
    with pytest.raises(StaleClaim):
        await queue.complete(t, old)

    assert (await queue.status(t)).state is JobState.PENDING
    await queue.complete(t, new)
    assert (await queue.status(t)).state is JobState.COMPLETE


async def test_set_state_unfenced_legacy_complete_works(queue: Queue) -> None:
    t = await add(queue, 1)
    await queue.set_state(t, JobState.PENDING)

    attempt, lease_until = await queue.set_state(t, JobState.COMPLETE)

    assert (attempt, lease_until) == (1, 0)
    status = await queue.status(t)
    assert (status.state, status.queue_length) == (JobState.COMPLETE, 0)
    await check_indexes(queue)


async def test_set_state_complete_counts_in_the_stats(queue: Queue) -> None:
    t = await add(queue, 1)
    await queue.set_state(t, JobState.PENDING)
    await queue.set_state(t, JobState.COMPLETE)

    assert (await queue.counts())["complete"] == 1
