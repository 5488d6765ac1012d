"""The HTTP source through its client over real TCP: refusals, oversized answers, and the
whole protocol against the real API app served by uvicorn."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

import pytest
import uvicorn
from fastapi import FastAPI
from pydantic import SecretStr
from redis.asyncio import Redis

from api.app import create_app
from api.settings import ApiSettings
from broker.queue import Queue
from broker.renders import RenderSample
from broker.states import JobState
from gpu_worker.errors import LeaseLost, SourceRefused, SourceUnavailable
from gpu_worker.settings import WorkerSettings
from gpu_worker.sources.http import HttpSource
from gpu_worker.sources.http_client import (
    MAX_ANSWER_BYTES,
)
from sdq.supervisor import free_port
from tests.conftest import BACKEND_SECRET
from tests.support.loopback import LoopbackServer


async def test_http_source_refuses_a_secret_with_a_line_break() -> None:
    settings = WorkerSettings(transport="http", backend_secret=SecretStr("s\r\nX-Evil: 1"))
    source = HttpSource(settings, "w-1")
    with pytest.raises(SourceRefused):
        await source.claim()
    await source.aclose()


async def test_http_source_treats_an_oversized_answer_as_unavailable() -> None:
    big = b"HTTP/1.1 200 OK\r\ncontent-length: %d\r\n\r\n" % (MAX_ANSWER_BYTES + 1)
    async with LoopbackServer(answer=lambda request: big) as server:
        settings = WorkerSettings(transport="http", backend_secret="s", api_url=server.url)
        source = HttpSource(settings, "w-1")
        with pytest.raises(SourceUnavailable, match="too large"):
            await source.claim()
        await source.aclose()


@pytest.fixture
async def api_url(redis: Redis, settings: ApiSettings) -> AsyncIterator[str]:
    """The real app (its lifespan run here) served by uvicorn in this event loop."""
    app: FastAPI = create_app(settings, redis=redis)
    port = free_port()
    config = uvicorn.Config(
        app, host="127.0.0.1", port=port, lifespan="off", log_config=None, access_log=False
    )
    server = uvicorn.Server(config)
    async with app.router.lifespan_context(app):
        serving = asyncio.create_task(server.serve())
        while not server.started:
            assert not serving.done(), "uvicorn did not start"
            await asyncio.sleep(0.01)
        yield f"http://127.0.0.1:{port}"
        server.should_exit = True
        await serving


async def test_http_source_runs_the_whole_protocol_against_the_api_over_tcp(
    api_url: str, settings: ApiSettings, queue: Queue
) -> None:
    worker = WorkerSettings(
        transport="http",
        api_url=api_url,
        key_prefix=settings.key_prefix,
        backend_secret=SecretStr(BACKEND_SECRET),
    )
    source = HttpSource(worker, "w-tcp")
    first, second = "a" * 32, "b" * 32
    await queue.add_job(first, "first, released", 2, 576, 576)
    await queue.add_job(second, "second, completed", 1, 768, 576)

    claim = await source.claim()
    assert claim is not None and claim.job.token == first and claim.fence == 1
    await source.renew(claim, 1)
    assert (await queue.status(first)).progress == 1
    assert await source.release(claim, "CUDA out of memory") is JobState.NEW
    with pytest.raises(LeaseLost):
        await source.complete(claim)  # released: the claim is stale

    again = await source.claim()
    assert again is not None and (again.job.token, again.fence) == (first, 2)
    await source.complete(again)
    later = await source.claim()
    assert later is not None and later.job.token == second
    await source.complete(later)
    assert await source.claim() is None
    await source.report([RenderSample(768, 576, 1, 900)], leaving=False)
    await source.aclose()

    assert [(await queue.status(t)).state for t in (first, second)] == [JobState.COMPLETE] * 2
    assert await queue.redis.hget(queue.keys.render_ms, "768x576:images") == "1"
