"""claim (direct worker): the oldest claimable job becomes pending under a lease in
one step, with an attempt id that fences every later call of this claim."""

from __future__ import annotations

from broker.job import JobSpec
from broker.queue import Queue
from broker.states import JobState
from tests.broker.helpers import add, check_indexes, server_ms, token, tuned


async def test_claim_of_an_empty_queue_is_none(queue: Queue) -> None:
    assert await queue.claim("w") is None


async def test_claim_takes_the_oldest_job_and_makes_it_pending(queue: Queue) -> None:
    await queue.add_job(token(1), "first", 2, 768, 576)
    await add(queue, 2)
    before = await server_ms(queue.redis)

    claim = await queue.claim("worker-a", lease_ms=20_000)

    after = await server_ms(queue.redis)
    assert claim is not None
    assert claim.job == JobSpec(token(1), 2, 768, 576, "first")
    assert claim.fence == 1
    assert before + 20_000 <= claim.lease_until_ms <= after + 20_000
    record = await queue.redis.hgetall(queue.keys.job(token(1)))
    assert (record["state"], record["worker"]) == ("pending", "worker-a")
    await check_indexes(queue)


async def test_claim_uses_the_worker_lease_setting_by_default(queue: Queue) -> None:
    q = tuned(queue, worker_lease_ms=45_000)
    await add(q, 1)
    before = await server_ms(q.redis)

    claim = await q.claim("w")

    assert claim is not None
    assert before + 45_000 <= claim.lease_until_ms <= await server_ms(q.redis) + 45_000


async def test_claim_attempt_increments_per_claim(queue: Queue) -> None:
    q = tuned(queue, max_attempts=10)
    await add(q, 1)

    attempts = []
    for _ in range(4):
        claim = await q.claim("w")
        assert claim is not None
        attempts.append(claim.fence)
        await q.release(claim.job.token, claim.fence, "again")

    assert attempts == [1, 2, 3, 4]


async def test_claim_never_hands_a_pending_job_out_again(queue: Queue) -> None:
    await add(queue, 1)
    assert await queue.claim("a") is not None

    assert await queue.claim("b") is None
    assert await queue.next_job() is None


async def test_claim_after_complete_leaves_the_job_alone(queue: Queue) -> None:
    await add(queue, 1)
    claim = await queue.claim("w")
    assert claim is not None
    await queue.complete(claim.job.token, claim.fence)

    assert await queue.claim("w") is None
    assert (await queue.status(token(1))).state is JobState.COMPLETE


async def test_wait_for_work_returns_once_a_job_is_added(queue: Queue) -> None:
    assert await queue.wait_for_work(0.05) is False  # idle: waits out the timeout

    await add(queue, 1)

    assert await queue.wait_for_work(1.0) is True  # BLPOP on the wake-up list
