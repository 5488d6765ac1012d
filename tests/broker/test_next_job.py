"""next_job (/getNextJob): names the oldest claimable job and reserves it for a while,
so that concurrent backends get different jobs; the job's state stays new."""

from __future__ import annotations

from broker.job import JobSpec
from broker.queue import Queue
from broker.states import JobState
from tests.broker.helpers import add, check_indexes, eventually, token, tuned


async def test_next_job_of_an_empty_queue_is_none(queue: Queue) -> None:
    assert await queue.next_job() is None


async def test_next_job_names_the_oldest_job_with_what_a_backend_needs(queue: Queue) -> None:
    await queue.add_job(token(1), "first", 3, 1024, 576)
    await queue.add_job(token(2), "second", 1, 576, 576)

    assert await queue.next_job() == JobSpec(token(1), 3, 1024, 576, "first")


async def test_next_job_hides_a_handed_out_job_from_the_next_caller(queue: Queue) -> None:
    for i in range(3):
        await add(queue, i)

    handed = [await queue.next_job() for _ in range(4)]

    assert [job.token if job else None for job in handed] == [token(0), token(1), token(2), None]
    assert (await queue.status(token(0))).state is JobState.NEW
    await check_indexes(queue)


async def test_next_job_offers_the_job_again_after_the_reservation(queue: Queue) -> None:
    q = tuned(queue, reservation_ms=50)
    await add(q, 1)
    assert await q.next_job() is not None

    again = await eventually(q.next_job)

    assert again.token == token(1)


async def test_next_job_expired_reservation_goes_back_to_the_head(queue: Queue) -> None:
    q = tuned(queue, reservation_ms=50)
    await add(q, 1)
    await add(q, 2)
    first = await q.next_job()
    assert first is not None and first.token == token(1)
    assert await tuned(q, reservation_ms=60_000).next_job() is not None  # job 2, held long

    again = await eventually(q.next_job)

    assert again.token == token(1)


async def test_next_job_with_zero_reservation_is_a_pure_peek(queue: Queue) -> None:
    q = tuned(queue, reservation_ms=0)
    await add(q, 1)
    await add(q, 2)

    peeks = [await q.next_job() for _ in range(3)]

    assert {job.token if job else None for job in peeks} == {token(1)}
    assert await q.redis.zcard(q.keys.reserved) == 0
    await check_indexes(q)


async def test_next_job_reserved_job_set_pending_leaves_the_reserved_set(queue: Queue) -> None:
    await add(queue, 1)
    job = await queue.next_job()
    assert job is not None

    await queue.set_state(job.token, JobState.PENDING)

    assert await queue.redis.zscore(queue.keys.reserved, job.token) is None
    assert (await queue.counts())["new"] == 0
    await check_indexes(queue)


async def test_next_job_reservation_does_not_stop_another_backend_setting_pending(
    queue: Queue,
) -> None:
    await add(queue, 1)
    await queue.next_job()

    await queue.set_state(token(1), JobState.PENDING, worker="another backend")

    assert (await queue.status(token(1))).state is JobState.PENDING


async def test_next_job_reservation_of_a_job_that_was_claimed_meanwhile_is_dropped(
    queue: Queue,
) -> None:
    q = tuned(queue, reservation_ms=50)
    await add(q, 1)
    assert await q.next_job() is not None
    attempt, _ = await q.set_state(token(1), JobState.PENDING)
    await q.complete(token(1), attempt)

    # Nothing comes back: the job is complete, its reservation is gone with it.
    assert (await q.requeue_expired()).counts == (0, 0, 0)
    assert await q.next_job() is None
    await check_indexes(q)


async def test_direct_claim_skips_reserved_jobs(queue: Queue) -> None:
    await add(queue, 1)
    await add(queue, 2)
    reserved = await queue.next_job()
    assert reserved is not None and reserved.token == token(1)

    claim = await queue.claim("w")

    assert claim is not None and claim.job.token == token(2)
    assert await queue.claim("w") is None
