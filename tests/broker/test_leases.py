"""Leases: a pending job whose worker stops renewing comes back to new at the head of
the queue (creation time kept, attempt counted), and fails after max_attempts."""

from __future__ import annotations

import pytest

from broker.errors import InvalidTransition, JobNotFound, StaleClaim
from broker.job import Claim
from broker.queue import Queue
from broker.states import JobState
from tests.broker.helpers import add, check_indexes, eventually, server_ms, token, tuned, wait_past

SHORT_MS = 50


async def claim_expired(queue: Queue, worker: str = "w") -> Claim:
    """Claims the head of the queue with a 50 ms lease and waits until the sweep
    brings it back (bounded, however slow the machine is)."""
    claim = await queue.claim(worker, lease_ms=SHORT_MS)
    assert claim is not None

    async def swept() -> bool:
        return sum((await queue.requeue_expired()).counts[:2]) == 1

    await eventually(swept)
    return claim


async def test_lease_expiry_brings_the_job_back_to_new(queue: Queue) -> None:
    await add(queue, 1)

    claim = await claim_expired(queue)

    status = await queue.status(claim.job.token)
    assert (status.state, status.attempts, status.progress) == (JobState.NEW, 1, 0)
    record = await queue.redis.hgetall(queue.keys.job(claim.job.token))
    assert record["last_error"] == "lease expired"
    assert (await queue.counts())["requeued"] == 1
    await check_indexes(queue)


async def test_lease_expiry_keeps_the_job_at_the_head_of_the_queue(queue: Queue) -> None:
    for i in range(4):
        await add(queue, i)
    lengths = [(await queue.status(token(i))).queue_length for i in range(4)]
    created = (await queue.status(token(0))).created_ms

    claim = await claim_expired(queue)

    assert claim.job.token == token(0)
    assert (await queue.status(token(0))).created_ms == created
    assert [(await queue.status(token(i))).queue_length for i in range(4)] == lengths
    again = await queue.claim("w2")
    assert again is not None and again.job.token == token(0)
    assert again.fence == 2


async def test_lease_expiry_fails_the_job_after_max_attempts(queue: Queue) -> None:
    q = tuned(queue, max_attempts=2, retention_s=600)
    await add(q, 1)

    await claim_expired(q)
    await claim_expired(q)

    status = await q.status(token(1))
    assert (status.state, status.attempts) == (JobState.FAILED, 2)
    assert await q.claim("w") is None
    assert await q.next_job() is None
    assert 0 < await q.redis.pttl(q.keys.job(token(1))) <= 600_000
    assert (await q.counts())["failed"] == 1
    await check_indexes(q)


async def test_lease_of_a_failed_job_cannot_be_renewed_or_completed(queue: Queue) -> None:
    q = tuned(queue, max_attempts=1)
    await add(q, 1)
    claim = await claim_expired(q)

    with pytest.raises(InvalidTransition):
        await q.renew_lease(claim.job.token, claim.fence)
    with pytest.raises(InvalidTransition):
        await q.complete(claim.job.token, claim.fence)
    with pytest.raises(InvalidTransition):
        await q.set_state(claim.job.token, JobState.PENDING)


async def test_lease_held_is_not_swept(queue: Queue) -> None:
    await add(queue, 1)
    claim = await queue.claim("w", lease_ms=60_000)
    assert claim is not None

    assert (await queue.requeue_expired()).counts == (0, 0, 0)
    assert (await queue.status(token(1))).state is JobState.PENDING


async def test_renew_lease_extends_the_lease(queue: Queue) -> None:
    await add(queue, 1)
    claim = await queue.claim("w", lease_ms=SHORT_MS)
    assert claim is not None

    until = await queue.renew_lease(claim.job.token, claim.fence, lease_ms=60_000, progress=1)
    await wait_past(queue.redis, claim.lease_until_ms)

    assert until >= claim.lease_until_ms + 60_000 - SHORT_MS
    assert await queue.redis.zscore(queue.keys.leases, token(1)) == until
    assert (await queue.requeue_expired()).counts == (0, 0, 0)
    status = await queue.status(token(1))
    assert (status.state, status.progress) == (JobState.PENDING, 1)


async def test_renew_lease_is_measured_from_the_server_clock(queue: Queue) -> None:
    await add(queue, 1)
    claim = await queue.claim("w")
    assert claim is not None

    before = await server_ms(queue.redis)
    until = await queue.renew_lease(claim.job.token, claim.fence, lease_ms=30_000)

    assert before + 30_000 <= until <= await server_ms(queue.redis) + 30_000


async def test_renew_lease_with_a_stale_attempt_is_refused(queue: Queue) -> None:
    await add(queue, 1)
    old = await claim_expired(queue)
    current = await queue.claim("w2", lease_ms=60_000)
    assert current is not None

    with pytest.raises(StaleClaim):
        await queue.renew_lease(old.job.token, old.fence, lease_ms=60_000)
    with pytest.raises(StaleClaim):
        await queue.complete(old.job.token, old.fence)

    assert await queue.redis.zscore(queue.keys.leases, token(1)) == current.lease_until_ms
    assert (await queue.status(token(1))).state is JobState.PENDING


async def test_renew_lease_of_a_job_that_is_not_pending_is_refused(queue: Queue) -> None:
    await add(queue, 1)

    with pytest.raises(InvalidTransition):
        await queue.renew_lease(token(1), 1)
    with pytest.raises(JobNotFound):
        await queue.renew_lease(token(404), 1)


async def test_legacy_pending_lease_expires_like_a_claim(queue: Queue) -> None:
    # 50 ms (settings refuse less than 1 s; tuned() sets it as the script would see it)
    q = tuned(queue, lease_base_ms=SHORT_MS, lease_per_megapixel_ms=0)
    await add(q, 1)
    _, until = await q.set_state(token(1), JobState.PENDING)
    await wait_past(q.redis, until)

    assert (await q.requeue_expired()).counts == (1, 0, 0)
    assert (await q.status(token(1))).state is JobState.NEW
