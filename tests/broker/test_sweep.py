"""requeue_expired, the sweep: expired leases back to new (or failed), expired
reservations back to waiting; bounded per call; also run inside next_job and claim."""

from __future__ import annotations

from broker.queue import Queue
from broker.states import JobState
from tests.broker.helpers import (
    add,
    check_indexes,
    eventually,
    scores,
    token,
    tuned,
    wait_past,
)


async def expire_claims(queue: Queue, n: int) -> None:
    """Claims n jobs, then cuts every lease to 1 ms and waits until all are over.

    (Claiming with 1 ms leases would not do: each claim sweeps the leases of the
    claims before it.)"""
    claims = []
    for _ in range(n):
        claim = await queue.claim("w", lease_ms=60_000)
        assert claim is not None
        claims.append(claim)
    ends = [await queue.renew_lease(c.job.token, c.fence, lease_ms=1) for c in claims]
    await wait_past(queue.redis, max(ends))


async def test_sweep_of_a_quiet_queue_does_nothing(queue: Queue) -> None:
    await add(queue, 1)

    assert (await queue.requeue_expired()).counts == (0, 0, 0)
    assert (await queue.status(token(1))).state is JobState.NEW


async def test_sweep_is_bounded_by_the_sweep_limit(queue: Queue) -> None:
    q = tuned(queue, sweep_limit=2, max_attempts=5)
    for i in range(5):
        await add(q, i)
    await expire_claims(q, 5)

    rounds = [await q.requeue_expired() for _ in range(4)]

    assert [r.counts for r in rounds] == [(2, 0, 0), (2, 0, 0), (1, 0, 0), (0, 0, 0)]
    assert [r.full for r in rounds] == [True, True, False, False]
    assert (await q.counts())["new"] == 5
    await check_indexes(q)


async def test_sweep_returns_the_oldest_leases_first(queue: Queue) -> None:
    q = tuned(queue, sweep_limit=1, max_attempts=5)
    for i in range(3):
        await add(q, i)
    await expire_claims(q, 3)

    await q.requeue_expired()

    states = [(await q.status(token(i))).state for i in range(3)]
    assert states == [JobState.NEW, JobState.PENDING, JobState.PENDING]


async def test_sweep_counts_failed_jobs(queue: Queue) -> None:
    q = tuned(queue, max_attempts=1)
    for i in range(3):
        await add(q, i)
    await expire_claims(q, 3)

    assert (await q.requeue_expired()).counts == (0, 3, 0)
    assert (await q.counts())["failed"] == 3
    await check_indexes(q)


async def test_sweep_brings_back_expired_reservations(queue: Queue) -> None:
    q = tuned(queue, reservation_ms=200, sweep_limit=2)
    for i in range(3):
        await add(q, i)

    async def all_reserved() -> bool:
        # A stalled machine may see a reservation expire before the next call
        # (which sweeps it back): keep asking until all three are held at once.
        await q.next_job()
        return await q.redis.zcard(q.keys.reserved) == 3

    await eventually(all_reserved)
    ends = await scores(q.redis, q.keys.reserved)
    await wait_past(q.redis, int(max(ends.values())))

    rounds = [await q.requeue_expired() for _ in range(3)]
    assert [r.counts for r in rounds] == [(0, 0, 2), (0, 0, 1), (0, 0, 0)]
    assert [r.full for r in rounds] == [True, False, False]
    assert await q.redis.zcard(q.keys.waiting) == 3
    await check_indexes(q)


async def test_sweep_runs_inside_next_job(queue: Queue) -> None:
    await add(queue, 1)
    await expire_claims(queue, 1)

    nxt = await queue.next_job()

    assert nxt is not None and nxt.token == token(1)
    assert (await queue.status(token(1))).attempts == 1


async def test_sweep_runs_inside_claim(queue: Queue) -> None:
    await add(queue, 1)
    await expire_claims(queue, 1)

    claim = await queue.claim("w2")

    assert claim is not None and (claim.job.token, claim.fence) == (token(1), 2)
