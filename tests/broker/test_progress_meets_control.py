"""Where the worker's additions (live previews, image deletions, a job claimed ahead
given back uncounted) meet the operator's calls and fair scheduling: cancel-client
and retry keep the preview and deletion records right, and an uncounted release
keeps a fairly queued job's place and every index and sum; on every engine."""

from __future__ import annotations

from broker.admin import QueueAdmin
from broker.fair import Scheduling
from broker.queue import Queue
from broker.states import JobState
from tests.broker.helpers import check_indexes, check_sums, drain, server_ms, token, tuned

JPEG = b"\xff\xd8\xff\xe0 a tiny preview \xff\xd9"
A, B = "198.51.100.1", "198.51.100.2"


async def add(q: Queue, i: int, client: str = A) -> str:
    await q.add_job(token(i), f"job {i}", 1, 576, 576, client=client)
    return token(i)


async def test_cancel_client_deletes_previews_and_schedules_the_images(queue: Queue) -> None:
    for i in (1, 2):
        await add(queue, i)
    await add(queue, 3, B)
    claim = await queue.claim("w", lease_ms=60_000)
    assert claim is not None and claim.fence is not None and claim.job.token == token(1)
    await queue.renew_lease(token(1), claim.fence, preview=JPEG)
    now = await server_ms(queue.redis)

    assert await QueueAdmin(queue, "ops").cancel_client(A) == (2, 0)

    assert await queue.redis.exists(queue.keys.preview(token(1))) == 0
    due = dict(await queue.redis.zrange(queue.keys.image_gc, 0, -1, withscores=True))
    assert set(due) == {token(1), token(2)} and all(
        now - 5_000 < d <= now + 5_000 for d in due.values()
    )
    await check_indexes(queue)
    await check_sums(queue)


async def test_retry_takes_a_failed_job_off_the_deletion_schedule(queue: Queue) -> None:
    q = tuned(queue, max_attempts=1)
    await add(q, 1)
    claim = await q.claim("w")
    assert claim is not None and claim.fence is not None
    await q.release(token(1), claim.fence, "broken")
    assert await q.redis.zscore(q.keys.image_gc, token(1)) is not None

    await QueueAdmin(q, "ops").retry(token(1))

    assert await q.redis.zscore(q.keys.image_gc, token(1)) is None
    assert await q.take_due_images() == []  # its new attempt's images are never deleted
    again = await q.claim("w")
    assert again is not None and again.fence is not None
    await q.complete(token(1), again.fence)
    assert await q.redis.zscore(q.keys.image_gc, token(1)) is not None  # with the job, later


async def test_uncounted_release_keeps_a_fair_job_s_place(queue: Queue) -> None:
    fair = tuned(queue, scheduling=Scheduling.FAIR)
    first = [await add(fair, i, A) for i in (1, 2)]
    other = await add(fair, 3, B)
    claim = await fair.claim("w", lease_ms=60_000)  # claimed ahead, then the worker stops
    assert claim is not None and claim.fence is not None and claim.job.token == first[0]

    state = await fair.release(first[0], claim.fence, "worker stopping", counted=False)

    status = await fair.status(first[0])
    assert (state, status.state, status.attempts) == (JobState.NEW, JobState.NEW, 0)
    await check_indexes(fair)
    await check_sums(fair)
    assert await drain(fair) == [first[0], other, first[1]]
