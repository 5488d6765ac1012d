"""Fair scheduling (SDQ_SCHEDULING=fair, broker/fair.py): start-time fair queuing across
client keys, each job costing its pixel-images; on every engine."""

from __future__ import annotations

import pytest

from broker.fair import ANONYMOUS, Scheduling, cost
from broker.job import ImportedJob
from broker.queue import Queue
from broker.states import JobState
from tests.broker.helpers import check_indexes, drain, scores, server_ms, token, tuned, wait_past

A, B, C = "198.51.100.1", "198.51.100.2", "2001:db8:1::/64"
ONE = cost(1, 576, 576)


@pytest.fixture
def fair(queue: Queue) -> Queue:
    return tuned(queue, scheduling=Scheduling.FAIR)


async def add(q: Queue, i: int, client: str = A, number: int = 1, size: str = "576x576") -> str:
    width, height = (int(n) for n in size.split("x"))
    await q.add_job(token(i), f"job {i}", number, width, height, client=client)
    return token(i)


async def test_fair_serves_each_client_in_turn(fair: Queue) -> None:
    heavy = [await add(fair, i, A) for i in range(5)]
    light = [await add(fair, 10, B), await add(fair, 11, C)]

    assert await drain(fair) == [heavy[0], *light, *heavy[1:]]
    await check_indexes(fair)


async def test_fair_with_every_job_from_another_client_is_first_come_first_served(
    fair: Queue,
) -> None:
    fifo = tuned(fair, scheduling=Scheduling.FIFO, key_prefix=fair.keys.prefix + "-fifo")
    clients = [f"198.51.100.{i}" for i in range(6)]
    for q in (fair, fifo):
        for i, client in enumerate(clients):
            await q.add_job(token(i), "x", 1 + i % 3, 576, 576, 1_000 + i, client=client)
        assert await q.claim("gpu-1") is not None

    lengths = {
        q.settings.scheduling: [(await q.status(token(i))).queue_length for i in range(6)]
        for q in (fair, fifo)
    }
    assert lengths[Scheduling.FAIR] == lengths[Scheduling.FIFO] == [0, 1, 2, 3, 4, 5]
    assert await drain(fair) == [token(i) for i in range(1, 6)]


async def test_fair_cost_is_images_times_pixels(fair: Queue) -> None:
    big = await add(fair, 1, A, number=4)  # costs 4: B's next three jobs go before A's next
    small = [await add(fair, 10 + i, B) for i in range(4)]
    after = await add(fair, 2, A)

    assert await drain(fair) == [big, *small, after]
    tags = await fair.redis.hmget(fair.keys.job(after), ["vstart", "vcost"])
    assert [float(t) for t in tags] == [4 * ONE, ONE]


async def test_fair_a_requeued_job_keeps_its_place(fair: Queue) -> None:
    first = await add(fair, 1, A)
    await add(fair, 2, A)
    await add(fair, 3, B)
    claim = await fair.claim("gpu-1")
    assert claim is not None and claim.job.token == first

    assert await fair.release(first, claim.fence, "gpu lost") is JobState.NEW

    assert (await drain(fair))[0] == first
    await check_indexes(fair)


async def test_fair_virtual_time_moves_on_claim_and_an_idle_client_starts_afresh(
    fair: Queue,
) -> None:
    for i in range(3):
        await add(fair, i, A)
    await drain(fair)
    assert float(await fair.redis.get(fair.keys.vtime) or 0) == 2 * ONE
    # A's last finish (3) is still past the virtual time: its next job waits for B's
    b, a = await add(fair, 10, B), await add(fair, 11, A)
    assert await drain(fair) == [b, a]
    # every finish tag at or below the virtual time is forgotten: both start afresh
    assert float(await fair.redis.get(fair.keys.vtime) or 0) == 3 * ONE
    assert await scores(fair.redis, fair.keys.vfinish) == {A: 4 * ONE}


async def test_fair_cancelling_a_client_s_last_job_gives_its_finish_tag_back(
    fair: Queue,
) -> None:
    await add(fair, 1, A)
    cancelled = await add(fair, 2, A)
    assert await fair.cancel(cancelled) is JobState.NEW

    later = await add(fair, 3, A)

    assert float(await fair.redis.hget(fair.keys.job(later), "vstart") or 0) == ONE
    await check_indexes(fair)


async def test_fair_jobs_of_the_importer_are_served_first_come_first_served_first(
    fair: Queue,
) -> None:
    await add(fair, 1, A)
    now = await server_ms(fair.redis)
    old = [ImportedJob(token(20 + i), "old", 1, 576, 576, JobState.NEW, now - 9_000 + i, None)
           for i in range(2)]  # fmt: skip
    assert await fair.import_jobs(old) == ["imported", "imported"]

    assert await drain(fair) == [token(20), token(21), token(1)]


async def test_fair_jobs_queued_under_the_other_mode_drain_first(fair: Queue) -> None:
    fifo = tuned(fair, scheduling=Scheduling.FIFO)
    before = [await add(fifo, i, A) for i in range(3)]  # queued first come first served
    after = [await add(fair, 10 + i, B) for i in range(2)]  # then the operator switched
    older_fair = [await add(fair, 20 + i, A) for i in range(2)]
    await wait_past(fair.redis, await server_ms(fair.redis))  # a tie goes to the FIFO set
    back = await add(fifo, 30, C)  # and back again

    # between the two sets the job created earlier goes first; within fair, fair order
    fair_order = [after[0], older_fair[0], after[1], older_fair[1]]
    assert await drain(fifo) == [*before, *fair_order, back]
    await check_indexes(fair)


async def test_fair_queue_length_counts_the_unfinished_jobs_served_before(fair: Queue) -> None:
    first = [await add(fair, i, A) for i in range(3)]
    await add(fair, 10, B)
    for worker in ("gpu-1", "gpu-2"):  # A's first, then B's, a millisecond apart
        await wait_past(fair.redis, await server_ms(fair.redis))
        assert await fair.claim(worker) is not None

    lengths = [(await fair.status(t)).queue_length for t in (*first, token(10))]

    # pending: those started before; new: every pending job and the waiting ones ahead
    assert lengths == [0, 2, 3, 1]
    details = await fair.job_details(first[2], 30_000)
    assert (details.position, details.ahead.pending_ahead, details.ahead.new_ahead) == (3, 2, 1)


async def test_fair_jobs_without_a_client_key_share_one(fair: Queue) -> None:
    anonymous = [await add(fair, i, "") for i in range(3)]
    b = await add(fair, 10, B)

    assert await drain(fair) == [anonymous[0], b, *anonymous[1:]]
    assert ANONYMOUS in await scores(fair.redis, fair.keys.vfinish)


async def test_fair_a_reservation_moves_the_virtual_time_and_keeps_the_place_on_expiry(
    fair: Queue,
) -> None:
    q = tuned(fair, reservation_ms=100)
    first = await add(q, 1, A)
    await add(q, 2, A)
    job = await q.next_job()
    assert job is not None and job.token == first
    assert float(await q.redis.get(q.keys.vtime) or 0) == 0  # its start tag
    ends = await scores(q.redis, q.keys.reserved)
    await wait_past(q.redis, int(max(ends.values())))

    assert (await q.requeue_expired()).unreserved == 1
    assert await q.redis.zscore(q.keys.fair, f"{1:016d}{first}") == 0
    await check_indexes(q)
