"""Queue control (broker/admin.py, `sdq admin`): pause and resume, retry, cancel,
cancel a client's jobs, the status read; each action atomic and in the audit list."""

from __future__ import annotations

import pytest

from broker.admin import QueueAdmin
from broker.errors import InvalidTransition, JobNotFound
from broker.queue import Queue
from broker.renders import RenderSample, WorkerFigures
from broker.states import JobState
from tests.broker.helpers import add, check_indexes, check_sums, token, tuned, wait_past

BY = "ops@bastion"
CLIENT, OTHER = "198.51.100.7", "198.51.100.8"


@pytest.fixture
def admin(queue: Queue) -> QueueAdmin:
    return QueueAdmin(queue, BY)


async def add_for(queue: Queue, i: int, client: str = CLIENT, number: int = 1) -> str:
    await queue.add_job(token(i), f"job {i}", number, 576, 576, client=client)
    return token(i)


async def test_admin_pause_hands_out_nothing_but_takes_adds(
    queue: Queue, admin: QueueAdmin
) -> None:
    first = await add(queue, 1)
    assert await admin.pause() is False  # it was running
    await add(queue, 2)

    assert await queue.claim("gpu-1") is None
    assert await queue.next_job() is None
    f = await queue.figures()
    assert (f.new, f.paused_ms is not None) == (2, True)
    assert (await queue.job_details(first, 30_000)).paused_ms is not None
    assert await admin.pause() is True  # pausing twice changes nothing

    await queue.redis.delete(queue.keys.wakeup)
    assert await admin.resume() is True
    assert await queue.redis.llen(queue.keys.wakeup) == 2  # idle workers are woken
    claim = await queue.claim("gpu-1")
    assert claim is not None and claim.job.token == first
    assert (await queue.figures()).paused_ms is None


async def test_admin_pause_still_brings_back_the_jobs_of_dead_workers(
    queue: Queue, admin: QueueAdmin
) -> None:
    await add(queue, 1)
    claim = await queue.claim("gpu-dead", lease_ms=50)
    assert claim is not None and claim.lease_until_ms is not None
    await admin.pause()
    await wait_past(queue.redis, claim.lease_until_ms)

    assert await queue.claim("gpu-2") is None  # paused: its sweep ran, nothing handed out
    assert (await queue.status(token(1))).state is JobState.NEW


async def test_admin_retry_puts_a_failed_job_back_at_its_place(
    queue: Queue, admin: QueueAdmin
) -> None:
    q = tuned(queue, max_attempts=1)
    failed = await add(q, 1, number=3)
    claim = await q.claim("gpu-1")
    assert claim is not None
    assert await q.release(failed, claim.fence, "out of memory") is JobState.FAILED
    await add(q, 2)

    await QueueAdmin(q, BY).retry(failed)

    status = await q.status(failed)
    assert (status.state, status.attempts, status.queue_length) == (JobState.NEW, 0, 0)
    assert await q.redis.pttl(q.keys.job(failed)) == -1  # open again: no retention
    again = await q.claim("gpu-1")
    assert again is not None and again.job.token == failed
    await check_indexes(q)
    await check_sums(q)
    with pytest.raises(InvalidTransition):
        await admin.retry(failed)  # pending, not failed
    with pytest.raises(JobNotFound):
        await admin.retry(token(99))


async def test_admin_cancel_is_the_v2_cancel_audited(queue: Queue, admin: QueueAdmin) -> None:
    job = await add(queue, 1)

    assert await admin.cancel(job) is JobState.NEW
    assert await admin.cancel(job) is JobState.CANCELLED

    actions = (await admin.status()).actions
    assert [(a.action, a.target, a.by) for a in actions] == [("cancel", job, BY)] * 2
    assert [a.outcome for a in actions] == ["already cancelled", "cancelled (was new)"]


async def test_admin_cancel_client_cancels_every_open_job_of_one_client(
    queue: Queue, admin: QueueAdmin
) -> None:
    mine = [await add_for(queue, i) for i in range(3)]
    other = await add_for(queue, 9, OTHER)
    claim = await queue.claim("gpu-1")
    assert claim is not None and claim.job.token == mine[0]
    await queue.redis.delete(queue.keys.job(mine[2]))  # a job whose hash is gone

    assert await admin.cancel_client(CLIENT) == (2, 1)

    states = [(await queue.status(t)).state for t in (*mine[:2], other)]
    assert states == [JobState.CANCELLED, JobState.CANCELLED, JobState.NEW]
    details = await queue.job_details(mine[0], 30_000)
    assert details.cancel_requested_ms is not None  # its worker stops
    assert await queue.redis.zrange(queue.keys.client(CLIENT), 0, -1) == []
    await check_indexes(queue)
    await check_sums(queue)


async def test_admin_status_shows_talkers_workers_and_the_last_actions(
    queue: Queue, admin: QueueAdmin
) -> None:
    for i in range(3):
        await add_for(queue, i, CLIENT, number=4)
    await add_for(queue, 9, OTHER, number=1)
    await queue.record_renders("gpu-1", [])
    await queue.record_renders("gpu-2", [])  # reported no figures (yet)
    await wait_past(queue.redis, (await queue.figures()).now_ms + 20)
    figures = WorkerFigures(0.75, 1.5, {"576x576": 0.5})
    await queue.record_renders("gpu-1", [RenderSample(576, 576, 1, 10)], figures=figures)
    claim = await queue.claim("gpu-1")
    assert claim is not None
    await admin.pause()
    await admin.resume()

    status = await admin.status(top=5, entries=5)

    assert [(t.client, t.images, t.jobs) for t in status.talkers] == [
        (CLIENT, 12, 3),
        (OTHER, 1, 1),
    ]
    worker, silent = status.workers  # most recently seen first
    assert (worker.worker, worker.job, worker.figures) == ("gpu-1", claim.job.token, figures)
    assert worker.busy_ratio == 0.75  # the worker's own figure, as /metrics exports it
    assert (silent.worker, silent.figures, silent.busy_ratio) == ("gpu-2", None, None)
    assert [a.action for a in status.actions] == ["resume", "pause"]
    assert (status.paused_ms, status.figures.pending) == (None, 1)
