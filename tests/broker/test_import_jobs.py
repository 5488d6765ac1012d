"""Queue.import_jobs: many import_job.lua calls in one pipelined round trip, on every
engine (a cluster pipeline included), and again after the script cache was emptied."""

from __future__ import annotations

import pytest

from broker.errors import InvalidJob
from broker.job import ImportedJob
from broker.queue import Queue
from broker.states import JobState
from tests.broker.helpers import check_indexes, server_ms, token


def job(i: int, state: JobState, created_ms: int, completed_ms: int | None = None) -> ImportedJob:
    return ImportedJob(token(i), f"old {i}", 2, 768, 576, state, created_ms, completed_ms)


async def test_import_jobs_stores_each_job_in_its_state_in_one_call(queue: Queue) -> None:
    now = await server_ms(queue.redis)
    jobs = [
        job(1, JobState.NEW, now - 3_000),
        job(2, JobState.PENDING, now - 2_000),
        job(3, JobState.COMPLETE, now - 1_000, completed_ms=now - 500),
        job(4, JobState.COMPLETE, 1_000, completed_ms=2_000),  # long past its retention
    ]

    outcomes = await queue.import_jobs(jobs)

    assert outcomes == ["imported", "imported", "imported", "expired"]
    assert await queue.import_jobs(jobs[:1]) == ["present"]
    assert [(await queue.status(token(i))).state for i in (1, 2, 3)] == [
        JobState.NEW,
        JobState.PENDING,
        JobState.COMPLETE,
    ]
    assert (await queue.status(token(3))).queue_length == 2
    f = await queue.figures()
    assert (f.new, f.pending, f.new_images, f.pending_images) == (1, 1, 2, 2)
    await check_indexes(queue)


async def test_import_jobs_reloads_the_script_after_a_flushed_cache(queue: Queue) -> None:
    await queue.import_jobs([job(1, JobState.NEW, 1_000)])
    await queue.redis.script_flush()

    outcomes = await queue.import_jobs([job(i, JobState.NEW, 1_000 + i) for i in range(2, 40)])

    assert outcomes == ["imported"] * 38
    assert (await queue.figures()).new == 39


async def test_import_jobs_of_an_unknown_state_is_invalid_and_writes_nothing(
    queue: Queue,
) -> None:
    with pytest.raises(InvalidJob):
        await queue.import_jobs([job(1, JobState.FAILED, 1_000)])

    assert not await queue.redis.exists(queue.keys.job(token(1)))
