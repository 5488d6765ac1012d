"""Step progress, live previews, cancellation seen by the heartbeat, the schedule of
image deletions and each worker's own figures: what renew_lease, get_preview,
take_due_images and record_renders add to the broker, on every engine."""

from __future__ import annotations

import pytest

from broker.errors import InvalidTransition, JobCancelled, StaleClaim
from broker.images import PREVIEW_MAX_BYTES
from broker.queue import Queue
from broker.renders import RenderSample, WorkerFigures
from broker.states import JobState
from tests.broker.helpers import add, eventually, server_ms, token, tuned

JPEG = b"\xff\xd8\xff\xe0 a tiny preview \xff\xd9"


async def details(queue: Queue, i: int):  # type: ignore[no-untyped-def]
    return await queue.job_details(token(i), 30_000)


async def test_progress_fraction_and_preview_of_the_current_claim_show(queue: Queue) -> None:
    await add(queue, 1, number=4)
    claim = await queue.claim("w", lease_ms=60_000)
    assert claim is not None and claim.fence is not None

    await queue.renew_lease(
        token(1), claim.fence, lease_ms=60_000, progress=1, fraction=0.375, preview=JPEG
    )

    shown = await details(queue, 1)
    assert (shown.progress, shown.fraction) == (1, 0.375)
    assert shown.preview_ms is not None
    assert abs(shown.preview_ms - await server_ms(queue.redis)) < 5_000
    assert await queue.preview(token(1)) == JPEG
    ttl = await queue.redis.pttl(queue.keys.preview(token(1)))
    assert 50_000 < ttl <= 60_000  # lives as long as the lease


async def test_progress_renew_without_a_preview_keeps_the_last_one_alive(queue: Queue) -> None:
    await add(queue, 1)
    claim = await queue.claim("w", lease_ms=2_000)
    assert claim is not None and claim.fence is not None
    await queue.renew_lease(token(1), claim.fence, lease_ms=2_000, preview=JPEG)

    await queue.renew_lease(token(1), claim.fence, lease_ms=60_000, fraction=0.5)

    assert await queue.redis.pttl(queue.keys.preview(token(1))) > 50_000
    assert await queue.preview(token(1)) == JPEG


async def test_progress_of_an_earlier_attempt_never_shows(queue: Queue) -> None:
    await add(queue, 1)
    first = await queue.claim("w1", lease_ms=60_000)
    assert first is not None and first.fence is not None
    await queue.renew_lease(token(1), first.fence, fraction=0.9, preview=JPEG)
    await queue.release(token(1), first.fence, "render failed")
    second = await queue.claim("w2", lease_ms=60_000)
    assert second is not None and second.fence == first.fence + 1
    await queue.redis.set(queue.keys.preview(token(1)), f"{first.fence}:AAAA")  # a leftover

    shown = await details(queue, 1)

    assert (shown.state, shown.fraction, shown.preview_ms) == (JobState.PENDING, None, None)
    assert await queue.preview(token(1)) is None


async def test_progress_preview_is_deleted_when_the_job_finishes(queue: Queue) -> None:
    for i in (1, 2, 3):
        await add(queue, i)
    claims = [await queue.claim("w", lease_ms=60_000) for _ in range(3)]
    for claim in claims:
        assert claim is not None and claim.fence is not None
        await queue.renew_lease(claim.job.token, claim.fence, preview=JPEG)
    c1, c2, c3 = claims
    assert c1 and c2 and c3 and c1.fence and c2.fence

    await queue.complete(token(1), c1.fence)
    await queue.release(token(2), c2.fence, "worker stopped")
    await queue.cancel(token(3))

    for i in (1, 2, 3):
        assert await queue.redis.exists(queue.keys.preview(token(i))) == 0
        assert await queue.preview(token(i)) is None
        assert (await details(queue, i)).preview_ms is None


async def test_progress_refuses_a_preview_over_the_limit(queue: Queue) -> None:
    await add(queue, 1)
    claim = await queue.claim("w")
    assert claim is not None and claim.fence is not None

    with pytest.raises(ValueError, match="at most"):
        await queue.renew_lease(token(1), claim.fence, preview=b"x" * (PREVIEW_MAX_BYTES + 1))


async def test_progress_renewal_of_a_cancelled_job_says_cancelled(queue: Queue) -> None:
    await add(queue, 1)
    claim = await queue.claim("w", lease_ms=60_000)
    assert claim is not None and claim.fence is not None

    await queue.cancel(token(1))

    with pytest.raises(JobCancelled) as raised:
        await queue.renew_lease(token(1), claim.fence)
    assert isinstance(raised.value, InvalidTransition)  # callers that knew only that
    with pytest.raises(InvalidTransition) as other:  # not the cancelled claim's fence
        await queue.renew_lease(token(1), claim.fence + 1)
    assert not isinstance(other.value, JobCancelled)


async def test_progress_renewal_of_a_superseded_claim_is_stale_not_cancelled(
    queue: Queue,
) -> None:
    await add(queue, 1)
    old = await queue.claim("w1", lease_ms=60_000)
    assert old is not None and old.fence is not None
    await queue.release(token(1), old.fence, "released")
    assert await queue.claim("w2", lease_ms=60_000) is not None

    with pytest.raises(StaleClaim):
        await queue.renew_lease(token(1), old.fence)


async def test_image_gc_schedules_complete_jobs_at_retention_end_others_at_once(
    queue: Queue,
) -> None:
    q = tuned(queue, retention_s=3_600, max_attempts=1)
    for i in (1, 2, 3, 4):
        await add(q, i)
    done = await q.claim("w")
    failed = await q.claim("w")
    assert done is not None and done.fence and failed is not None and failed.fence
    await q.complete(token(1), done.fence)
    await q.release(token(2), failed.fence, "broken")
    await q.cancel(token(3))
    now = await server_ms(q.redis)

    due = dict(await q.redis.zrange(q.keys.image_gc, 0, -1, withscores=True))

    assert set(due) == {token(1), token(2), token(3)}
    assert now + 3_590_000 < due[token(1)] <= now + 3_600_000
    assert now - 5_000 < due[token(2)] <= now and now - 5_000 < due[token(3)] <= now
    assert sorted(await q.take_due_images()) == [token(2), token(3)]
    assert await q.take_due_images() == []  # taken once, by one caller
    assert await q.redis.zcard(q.keys.image_gc) == 1


async def test_image_gc_drops_entries_nobody_took_within_an_hour(queue: Queue) -> None:
    await queue.redis.zadd(queue.keys.image_gc, {token(9): 1_000})  # due long ago
    await add(queue, 1)
    await queue.cancel(token(1))

    assert await queue.redis.zrange(queue.keys.image_gc, 0, -1) == [token(1)]


async def test_image_gc_takes_at_most_the_limit(queue: Queue) -> None:
    await queue.redis.zadd(
        queue.keys.image_gc, {token(i): await server_ms(queue.redis) for i in range(5)}
    )

    first = await queue.take_due_images(limit=3)
    rest = await queue.take_due_images(limit=3)

    assert (
        len(first) == 3
        and len(rest) == 2
        and set(first) | set(rest) == {token(i) for i in range(5)}
    )


async def test_worker_figures_are_reported_and_read_back_until_it_leaves(queue: Queue) -> None:
    figures = WorkerFigures(0.981, 1.93, {"768x576": 0.518, "576x576": 0.4})
    await queue.record_renders("gpu-1", [RenderSample(768, 576, 4, 2072)], figures=figures)
    await queue.record_renders("gpu-2", [])  # no figures: reported nothing yet

    read = await queue.figures()

    assert read.workers == {"gpu-1": WorkerFigures(0.981, 1.93, {"576x576": 0.4, "768x576": 0.518})}
    await queue.record_renders("gpu-1", [], leaving=True)
    assert (await queue.figures()).workers == {}


async def test_worker_figures_of_a_worker_not_seen_lately_are_not_shown(queue: Queue) -> None:
    await queue.record_renders("old", [], figures=WorkerFigures(0.5, 1.0, {}))

    async def gone() -> bool:
        return (await queue.figures(live_ms=1)).workers == {}

    await eventually(gone)


def test_worker_figures_survive_their_text_and_refuse_anything_else() -> None:
    figures = WorkerFigures(1.0, 0.25, {"1024x576": 3.5})

    assert WorkerFigures.decode(figures.encode()) == figures
    for text in ("", "busy=1", "busy=x ips=1", "busy=1 ips=1 ../x=2", "busy=nan ips=1",
                 "busy=-1 ips=1"):  # fmt: skip
        assert WorkerFigures.decode(text) is None


async def test_release_of_a_job_never_started_costs_no_attempt(queue: Queue) -> None:
    q = tuned(queue, max_attempts=1)
    await add(q, 1)
    await add(q, 2)
    claim = await q.claim("w", lease_ms=60_000)  # claimed ahead, then the worker stops
    assert claim is not None and claim.fence is not None

    state = await q.release(token(1), claim.fence, "worker stopping", counted=False)

    status = await q.status(token(1))
    assert (state, status.state, status.attempts) == (JobState.NEW, JobState.NEW, 0)
    again = await q.claim("w2")
    assert again is not None and again.job.token == token(1)  # still at the head
    f = await q.figures()
    assert (f.new_images, f.pending_images) == (1, 1)
