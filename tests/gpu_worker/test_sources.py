"""Both job sources against the broker: claims, fencing, release. The HTTP source
drives the real API app through ASGITransport; the direct one the same Redis."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import httpx
import pytest
from fastapi import FastAPI
from redis.asyncio import Redis

from api.app import create_app
from api.settings import ApiSettings
from broker.queue import Queue
from broker.renders import RenderSample, WorkerFigures
from broker.states import JobState
from gpu_worker.errors import JobCancelled, LeaseLost, SourceRefused, SourceUnavailable
from gpu_worker.settings import WorkerSettings
from gpu_worker.sources.base import JobSource
from gpu_worker.sources.http import HttpSource
from gpu_worker.sources.redis import RedisSource
from tests.conftest import BACKEND_SECRET

T1, T2 = "c" * 32, "d" * 32


def worker_settings(settings: ApiSettings, **overrides: object) -> WorkerSettings:
    values: dict[str, Any] = {
        "key_prefix": settings.key_prefix,
        "backend_secret": BACKEND_SECRET,
        "api_url": "http://sdq.test",
        **overrides,
    }
    return WorkerSettings(**values)


@pytest.fixture
async def app(redis: Redis, settings: ApiSettings) -> AsyncIterator[FastAPI]:
    application = create_app(settings, redis=redis)
    async with application.router.lifespan_context(application):
        yield application


@pytest.fixture(params=["http", "redis"])
async def source(
    request: pytest.FixtureRequest, redis: Redis, settings: ApiSettings, app: FastAPI
) -> AsyncIterator[JobSource]:
    made: JobSource
    if request.param == "http":
        made = HttpSource(worker_settings(settings), "w-1", httpx.ASGITransport(app=app))
    else:
        made = RedisSource(worker_settings(settings), "w-1", redis=redis, waiter=redis)
    yield made
    await made.aclose()


async def test_source_claims_oldest_job_first_under_a_fenced_lease(
    source: JobSource, queue: Queue
) -> None:
    await queue.add_job(T1, "first", 2, 768, 576)
    await queue.add_job(T2, "second", 1, 576, 576)
    claim = await source.claim()
    assert claim is not None
    assert (claim.job.token, claim.job.number, claim.job.width, claim.job.prompt) == (
        T1,
        2,
        768,
        "first",
    )
    assert claim.fence == 1 and claim.lease_until_ms
    assert (await queue.status(T1)).state is JobState.PENDING


async def test_source_claims_nothing_from_an_empty_queue(source: JobSource) -> None:
    assert await source.claim() is None


async def test_source_renews_with_progress_then_completes(source: JobSource, queue: Queue) -> None:
    await queue.add_job(T1, "renewed", 3, 576, 576)
    claim = await source.claim()
    assert claim is not None
    await source.renew(claim, 2)
    assert (await queue.status(T1)).progress == 2
    await source.complete(claim)
    assert (await queue.status(T1)).state is JobState.COMPLETE


async def test_source_renews_with_the_step_fraction_and_a_preview(
    source: JobSource, queue: Queue
) -> None:
    await queue.add_job(T1, "drawn", 4, 576, 576)
    claim = await source.claim()
    assert claim is not None
    preview = b"\xff\xd8\xff\xe0 a preview \xff\xd9"

    await source.renew(claim, 1, 0.4, preview)

    details = await queue.job_details(T1, 30_000)
    assert (details.progress, details.fraction) == (1, 0.4)
    assert await queue.preview(T1) == preview


async def test_source_renewal_of_a_cancelled_job_raises_job_cancelled(
    source: JobSource, queue: Queue
) -> None:
    await queue.add_job(T1, "cancelled", 1, 576, 576)
    claim = await source.claim()
    assert claim is not None
    await queue.cancel(T1)

    with pytest.raises(JobCancelled):
        await source.renew(claim, 0, 0.5)


async def test_source_release_of_a_job_never_started_is_not_counted(
    source: JobSource, queue: Queue
) -> None:
    await queue.add_job(T1, "claimed ahead", 1, 576, 576)
    claim = await source.claim()
    assert claim is not None

    assert await source.release(claim, "worker stopping", counted=False) is JobState.NEW
    assert (await queue.status(T1)).attempts == 0


async def test_source_report_carries_the_workers_figures(source: JobSource, queue: Queue) -> None:
    figures = WorkerFigures(0.97, 2.0, {"576x576": 0.5})

    await source.report([RenderSample(576, 576, 4, 2000)], leaving=False, figures=figures)

    assert (await queue.figures()).workers == {"w-1": figures}
    assert await source.take_due_images(10) == []


async def test_source_zombie_can_neither_extend_nor_complete_nor_release(
    source: JobSource, queue: Queue
) -> None:
    await queue.add_job(T1, "zombie", 1, 576, 576)
    old = await source.claim()
    assert old is not None and old.fence is not None
    # The lease expires; another worker claims the job again.
    await queue.release(T1, old.fence, "lease expired (simulated)")
    new = await queue.claim("w-2", 60_000)
    assert new is not None and new.fence == old.fence + 1
    with pytest.raises(LeaseLost):
        await source.renew(old, 1)
    with pytest.raises(LeaseLost):
        await source.complete(old)
    with pytest.raises(LeaseLost):
        await source.release(old, "zombie gives up")
    status = await queue.status(T1)
    assert (status.state, status.attempts) == (JobState.PENDING, 1)
    await queue.complete(T1, new.fence)


async def test_source_release_counts_an_attempt_then_fails_the_job(
    source: JobSource, queue: Queue
) -> None:
    await queue.add_job(T1, "released", 1, 576, 576)
    await queue.add_job(T2, "behind it", 1, 576, 576)
    outcomes = []
    for _ in range(queue.settings.max_attempts):
        claim = await source.claim()
        assert claim is not None and claim.job.token == T1  # back at the head each time
        outcomes.append(await source.release(claim, "CUDA out of memory"))
    assert outcomes == [JobState.NEW] * (queue.settings.max_attempts - 1) + [JobState.FAILED]
    status = await queue.status(T1)
    assert (status.state, status.attempts) == (JobState.FAILED, queue.settings.max_attempts)


async def test_source_report_records_render_times_and_liveness(
    source: JobSource, queue: Queue
) -> None:
    await source.report([RenderSample(576, 576, 4, 2000)], leaving=False)
    await source.report([RenderSample(576, 576, 2, 1600)], leaving=False)
    render_ms = await queue.redis.hgetall(queue.keys.render_ms)
    assert (render_ms["576x576:images"], render_ms["576x576:ms"]) == ("6", "3600")
    assert render_ms["576x576:ewma_ms"] == "590"  # 500 + 0.3 * (800 - 500)
    assert await queue.redis.zscore(queue.keys.workers, "w-1") is not None
    await source.report([], leaving=True)
    assert await queue.redis.zscore(queue.keys.workers, "w-1") is None


async def test_http_source_refuses_to_run_with_a_wrong_secret(
    app: FastAPI, settings: ApiSettings
) -> None:
    wrong = worker_settings(settings, backend_secret="not-the-secret")
    source = HttpSource(wrong, "w-1", httpx.ASGITransport(app=app))
    with pytest.raises(SourceRefused):
        await source.claim()
    await source.aclose()


async def test_http_source_reports_an_unreachable_api_as_unavailable(
    settings: ApiSettings,
) -> None:
    source = HttpSource(worker_settings(settings, api_url="http://127.0.0.1:9"), "w-1")
    with pytest.raises(SourceUnavailable):
        await source.claim()
    await source.aclose()
