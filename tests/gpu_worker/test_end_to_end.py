"""End to end on a real Redis engine: 200 jobs, 2 HTTP workers through a real API
process and 2 direct workers, all at once. Nothing lost, nothing done twice."""

from __future__ import annotations

import asyncio
import time
from pathlib import Path

import pytest
from redis.asyncio import Redis

from broker.queue import Queue
from gpu_worker.sources.http import HttpSource
from gpu_worker.sources.redis import RedisSource
from gpu_worker.storage.local import LocalStore
from gpu_worker.worker import Worker
from sdq.embedded_redis import EmbeddedRedis
from tests.gpu_worker.conftest import WorkerSettingsFactory
from tests.gpu_worker.support import CountingRenderer, png_text

JOBS = 200
SIZES = [(1024, 576), (768, 576), (576, 768), (576, 576)]


@pytest.mark.slow
async def test_end_to_end_200_jobs_4_workers_each_rendered_once_in_fifo_order(
    redis_engine: EmbeddedRedis,
    api_process: str,
    worker_settings: WorkerSettingsFactory,
    tmp_path: Path,
) -> None:
    settings = worker_settings(api_url=api_process)
    client = Redis.from_url(redis_engine.url, decode_responses=True)
    queue = Queue(client, settings)
    tokens = [f"{i:032x}" for i in range(1, JOBS + 1)]
    for i, token in enumerate(tokens):
        width, height = SIZES[i % 4]
        await queue.add_job(token, f"job {i}", 1 + i % 3, width, height)

    renderer = CountingRenderer()
    store = LocalStore(tmp_path / "images")
    workers = [
        Worker(HttpSource(settings, "http-1"), renderer, store, settings),
        Worker(HttpSource(settings, "http-2"), renderer, store, settings),
        Worker(RedisSource(settings, "direct-1"), renderer, store, settings),
        Worker(RedisSource(settings, "direct-2"), renderer, store, settings),
    ]
    tasks = [asyncio.create_task(worker.run()) for worker in workers]
    deadline = time.monotonic() + 120
    while (await queue.counts()).get("complete", 0) < JOBS:
        assert time.monotonic() < deadline, await queue.counts()
        assert not any(task.done() for task in tasks)
        await asyncio.sleep(0.1)
    for worker in workers:
        worker.stop()
    assert await asyncio.gather(*tasks) == [0, 0, 0, 0]
    for worker in workers:
        await worker.source.aclose()

    expected = {(token, i) for n, token in enumerate(tokens) for i in range(1 + n % 3)}
    assert set(renderer.renders) == expected
    assert set(renderer.renders.values()) == {1}  # every image rendered exactly once
    stored = {p.relative_to(store.folder).as_posix() for p in store.folder.glob("*/*.png")}
    assert stored == {f"{token}/{i:05d}.png" for token, i in expected}
    for token, i in expected:
        text = png_text((store.folder / token / f"{i:05d}.png").read_bytes())
        assert (text["sdq:token"], text["sdq:index"]) == (token, str(i))
    assert sum(w.completed for w in workers) == JOBS
    assert all(w.completed > 0 for w in workers), [w.completed for w in workers]

    started = [int(await client.hget(queue.keys.job(t), "started_ms") or 0) for t in tokens]
    assert started == sorted(started)  # claimed in FIFO order, across both transports
    counts = await queue.counts()
    assert (counts["new"], counts["pending"], counts.get("requeued", 0)) == (0, 0, 0)
    await client.aclose()
