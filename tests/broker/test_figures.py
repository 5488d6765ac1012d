"""Queue.figures(): every figure of the whole queue in one script call, on every engine.
The images per state (and per resolution) are running sums the scripts keep (O(1)
to read); after any sequence of operations (FIFO and fair adds, operator actions
included) they equal a brute-force count over the job hashes, and the indexes agree."""

from __future__ import annotations

import uuid
from contextlib import suppress

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from broker.admin import QueueAdmin
from broker.errors import InvalidTransition, JobNotFound, StaleClaim, TokenExists
from broker.fair import Scheduling
from broker.job import ImportedJob
from broker.queue import Queue
from broker.renders import RenderSample
from broker.states import JobState
from tests.broker.helpers import (
    add,
    check_indexes,
    check_sums,
    job_hashes,
    server_ms,
    token,
    tuned,
)


async def brute_force_images(queue: Queue) -> dict[str, int]:
    """Images per unfinished state, counted job by job (what the sums must equal)."""
    counted = {"new": 0, "pending": 0}
    for job in (await job_hashes(queue)).values():
        if job["state"] in counted:
            counted[job["state"]] += int(job["number"])
    return counted


async def check_images(queue: Queue) -> None:
    f = await queue.figures()
    assert {"new": f.new_images, "pending": f.pending_images} == await brute_force_images(queue)


async def test_figures_of_an_empty_queue(queue: Queue) -> None:
    f = await queue.figures()

    assert (f.waiting, f.reserved, f.pending, f.new) == (0, 0, 0, 0)
    assert (f.new_images, f.pending_images, f.workers_seen) == (0, 0, 0)
    assert (f.oldest_waiting_ms, f.oldest_open_ms) == (None, None)
    assert (f.counters, f.render_times, f.durations) == ({}, {}, {})
    assert (f.since_ms, f.jobs_per_minute) == (None, None)
    assert abs(f.now_ms - await server_ms(queue.redis)) < 5_000


async def test_figures_read_every_figure_in_one_call(queue: Queue) -> None:
    await add(queue, 1, created_ms=1_000, number=2)
    await add(queue, 2, created_ms=2_000, number=3)
    await add(queue, 3, created_ms=3_000, number=4)
    await add(queue, 4, created_ms=4_000, number=5)
    nxt = await queue.next_job()  # job 1: reserved, still new
    assert nxt is not None and nxt.token == token(1)
    claim = await queue.claim("gpu-1")  # job 2: pending
    assert claim is not None and claim.job.token == token(2)
    await queue.set_state(token(3), JobState.PENDING)
    await queue.set_state(token(3), JobState.COMPLETE)
    await queue.record_renders("gpu-2", [RenderSample(576, 576, 4, 8000)])

    f = await queue.figures()

    assert (f.waiting, f.reserved, f.pending, f.new) == (1, 1, 1, 2)
    assert (f.new_images, f.pending_images) == (2 + 5, 3)
    assert (f.oldest_waiting_ms, f.oldest_open_ms) == (4_000, 1_000)
    assert (f.counters["added"], f.counters["complete"]) == (4, 1)
    assert f.workers_seen == 1
    assert f.render_times["576x576"].images == 4
    assert f.durations["576x576:count"] == 1


async def test_figures_counts_is_a_view_of_the_figures(queue: Queue) -> None:
    await add(queue, 1)
    await add(queue, 2)
    await queue.claim("w")

    f, counts = await queue.figures(), await queue.counts()

    assert counts == {"new": f.new, "pending": f.pending, **f.counters}


async def test_figures_take_a_throughput_sample_only_when_asked(queue: Queue) -> None:
    await queue.figures()
    assert not await queue.redis.exists(queue.keys.throughput)

    first = await queue.figures(sample_every_ms=5_000)
    second = await queue.figures(sample_every_ms=5_000)

    assert first.since_ms is None  # nothing before the first sample
    assert second.since_ms is not None and second.since_complete == 0
    assert await queue.redis.zcard(queue.keys.throughput) == 1  # at most one per 5 s
    assert (await queue.figures()).since_ms == second.since_ms  # a read sees it too


async def test_figures_images_follow_every_transition(queue: Queue) -> None:
    q = tuned(queue, max_attempts=2)

    async def images() -> tuple[int, int]:
        f = await q.figures()
        return f.new_images, f.pending_images

    assert await images() == (0, 0)  # the sums are kept from here on

    await add(q, 1, number=4)
    await add(q, 2, number=3)
    await add(q, 3, number=2)
    assert await images() == (9, 0)
    await q.next_job()  # reserved: still new
    assert await images() == (9, 0)
    claim = await q.claim("w")  # job 2 (job 1 is reserved)
    assert claim is not None and await images() == (6, 3)
    await q.release(claim.job.token, claim.fence, "gpu lost")  # back to new
    assert await images() == (9, 0)
    await q.set_state(token(1), JobState.PENDING)
    assert await images() == (5, 4)
    await q.set_state(token(1), JobState.COMPLETE)
    assert await images() == (5, 0)
    await q.cancel(token(3))
    assert await images() == (3, 0)
    claim = await q.claim("w")
    assert claim is not None
    await q.release(claim.job.token, claim.fence, "again")  # second attempt: failed
    assert await images() == (0, 0)
    assert await q.import_jobs([imported(7, JobState.PENDING, 5), imported(8, JobState.NEW, 6)])
    assert await images() == (6, 5)
    await check_images(q)


def imported(i: int, state: JobState, number: int = 1) -> ImportedJob:
    return ImportedJob(token(i), f"job {i}", number, 576, 576, state, 1_000 + i, None)


# One operation of the queue: (name, job index, images); refusals are part of the game.
# Weighted so that jobs often get claimed and given up on twice (max_attempts=2: failed).
OPERATIONS = st.tuples(
    st.sampled_from(
        ["add"] * 3
        + ["claim"] * 3
        + ["release"] * 3
        + ["expire_leases"] * 2
        + ["pending"] * 2
        + ["import_new", "import_pending", "import_complete", "next", "complete"]
        + ["stale_release", "cancel", "expire_reservations", "sweep"]
        + ["add_fair"] * 2
        + ["retry", "cancel_client", "pause", "resume"]
    ),
    st.integers(0, 2),  # few jobs, so that most operations find one to act on
    st.integers(1, 16),
)
SIZES = [(576, 576), (768, 576), (1024, 576)]
CLIENTS = ["198.51.100.1", "2001:db8::/64"]


async def operate(q: Queue, name: str, i: int, number: int) -> None:
    t = token(i)
    fence = int(await q.redis.hget(q.keys.job(t), "fence") or 0)
    with suppress(JobNotFound, InvalidTransition, StaleClaim, TokenExists):
        if name in ("add", "add_fair", "retry", "cancel_client", "pause", "resume"):
            await operate_more(q, name, i, number)
        elif name.startswith("import_"):
            await q.import_jobs([imported(i, JobState(name.removeprefix("import_")), number)])
        elif name == "next":
            await q.next_job()
        elif name == "claim":
            await q.claim("w", lease_ms=60_000)
        elif name in ("pending", "complete"):
            await q.set_state(t, JobState(name))
        elif name in ("release", "stale_release"):
            await q.release(t, fence if name == "release" else fence + 1, "random")
        elif name == "cancel":
            await q.cancel(t)
        elif name.startswith("expire_"):  # as if their time had passed
            key = q.keys.leases if name == "expire_leases" else q.keys.reserved
            for member in await q.redis.zrange(key, 0, -1):
                await q.redis.zadd(key, {member: 0})
            await q.requeue_expired()
        else:
            await q.requeue_expired()


async def operate_more(q: Queue, name: str, i: int, number: int) -> None:
    """Adds (FIFO or fair, of several clients and sizes) and the operator's actions."""
    admin = QueueAdmin(q, "tester@host")
    if name in ("add", "add_fair"):
        scheduling = Scheduling.FAIR if name == "add_fair" else Scheduling.FIFO
        width, height = SIZES[number % 3]
        client = CLIENTS[number % 2] if number % 3 else ""
        await tuned(q, scheduling=scheduling).add_job(
            token(i), f"job {i}", number, width, height, client=client
        )
    elif name == "retry":
        await admin.retry(token(i))
    elif name == "cancel_client":
        await admin.cancel_client(CLIENTS[i % 2])
    else:
        await (admin.pause() if name == "pause" else admin.resume())


@settings(
    max_examples=50,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(steps=st.lists(OPERATIONS, max_size=30))
async def test_figures_images_equal_a_brute_force_count_after_any_operations(
    queue: Queue, steps: list[tuple[str, int, int]]
) -> None:
    q = tuned(queue, key_prefix=f"images-{uuid.uuid4().hex[:12]}", max_attempts=2)
    assert (await q.figures()).new_images == 0  # from here on the sums are kept, not counted
    for name, i, number in steps:
        await operate(q, name, i, number)
    await check_images(q)
    await check_sums(q)
    await check_indexes(q)
    f = await q.figures()
    states = [job["state"] for job in (await job_hashes(q)).values()]
    assert (f.new, f.pending) == (states.count("new"), states.count("pending"))


async def test_figures_count_the_images_of_a_queue_filled_before_the_sums_existed(
    queue: Queue,
) -> None:
    await add(queue, 1, number=4)
    await add(queue, 2, number=3)
    await queue.set_state(token(2), JobState.PENDING)
    await queue.redis.delete(queue.keys.images)  # as an older version left the queue

    f = await queue.figures()

    assert (f.new_images, f.pending_images) == (4, 3)  # counted once, job by job
    await add(queue, 3, number=5)
    assert (await queue.figures()).new_images == 9  # then kept as running sums
    await check_images(queue)
