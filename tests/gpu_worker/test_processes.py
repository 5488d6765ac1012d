"""Real `sdq worker` processes, killed and stopped the ways production does it."""

from __future__ import annotations

import asyncio
import io
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from PIL import Image

from broker.queue import Queue
from broker.states import JobState
from gpu_worker.sources.redis import RedisSource
from gpu_worker.worker import Worker
from sdq.embedded_redis import EmbeddedRedis
from tests.gpu_worker.conftest import REPO, WorkerSettingsFactory, sdq_env
from tests.gpu_worker.support import CountingRenderer, MemoryStore

pytestmark = pytest.mark.slow

A, B = "a1" * 16, "b2" * 16


def spawn_worker(
    redis_engine: EmbeddedRedis, prefix: str, images: Path, ms_per_image: int
) -> subprocess.Popen[bytes]:
    env = sdq_env(
        redis_url=redis_engine.url,
        key_prefix=prefix,
        transport="redis",
        renderer="test-pattern",
        storage="local",
        images_dir=str(images),
        test_pattern_ms_per_image=str(ms_per_image),
        worker_lease_ms="1000",
        idle_poll_s="0.5",
    )
    return subprocess.Popen([sys.executable, "-m", "sdq.cli", "worker"], env=env, cwd=REPO)


async def wait_state(real_queue: Queue, token: str, state: JobState, timeout_s: float = 30) -> None:
    deadline = time.monotonic() + timeout_s
    while (await real_queue.status(token)).state is not state:
        assert time.monotonic() < deadline, f"{token} never became {state}"
        await real_queue.requeue_expired()  # what the API's sweeper does every few seconds
        await asyncio.sleep(0.05)


async def exit_code(process: subprocess.Popen[bytes], timeout_s: float) -> int:
    return await asyncio.to_thread(process.wait, timeout_s)


async def test_worker_killed_mid_job_its_job_returns_at_the_head_and_completes(
    redis_engine: EmbeddedRedis, prefix: str, real_queue: Queue, tmp_path: Path,
    worker_settings: WorkerSettingsFactory,
) -> None:  # fmt: skip
    await real_queue.add_job(A, "killed mid-job", 2, 576, 576)
    await real_queue.add_job(B, "queued behind it", 1, 576, 576)
    doomed = spawn_worker(redis_engine, prefix, tmp_path / "images", ms_per_image=30_000)
    try:
        await wait_state(real_queue, A, JobState.PENDING)
    finally:
        doomed.kill()
    assert await exit_code(doomed, 10) == -signal.SIGKILL
    await wait_state(real_queue, A, JobState.NEW)  # its lease ran out; A keeps its place

    renderer = CountingRenderer()
    settings = worker_settings()
    survivor = Worker(RedisSource(settings, "survivor"), renderer, MemoryStore(), settings)
    task = asyncio.create_task(survivor.run())
    await wait_state(real_queue, B, JobState.COMPLETE)
    survivor.stop()
    assert await task == 0
    await survivor.source.aclose()
    assert renderer.order == [A, B]
    status = await real_queue.status(A)
    assert (status.state, status.attempts) == (JobState.COMPLETE, 1)


async def test_worker_sigterm_finishes_the_current_job_then_exits_0(
    redis_engine: EmbeddedRedis, prefix: str, real_queue: Queue, tmp_path: Path
) -> None:
    await real_queue.add_job(A, "finish me", 1, 768, 576)
    await real_queue.add_job(B, "not me", 1, 576, 576)
    images = tmp_path / "images"
    worker = spawn_worker(redis_engine, prefix, images, ms_per_image=1500)
    try:
        await wait_state(real_queue, A, JobState.PENDING)
        worker.send_signal(signal.SIGTERM)
        assert await exit_code(worker, 20) == 0
    finally:
        worker.kill()
    assert (await real_queue.status(A)).state is JobState.COMPLETE
    assert (await real_queue.status(B)).state is JobState.NEW
    image = Image.open(io.BytesIO((images / A / "00000.png").read_bytes()))
    assert (image.format, image.size) == ("PNG", (768, 576))


async def test_worker_second_sigterm_releases_the_job_and_exits_at_once(
    redis_engine: EmbeddedRedis, prefix: str, real_queue: Queue, tmp_path: Path
) -> None:
    await real_queue.add_job(A, "interrupted", 1, 576, 576)
    worker = spawn_worker(redis_engine, prefix, tmp_path / "images", ms_per_image=60_000)
    try:
        await wait_state(real_queue, A, JobState.PENDING)
        worker.send_signal(signal.SIGTERM)
        await asyncio.sleep(0.3)
        worker.send_signal(signal.SIGTERM)
        assert await exit_code(worker, 20) == 0  # long before the 60 s render would end
    finally:
        worker.kill()
    status = await real_queue.status(A)
    assert (status.state, status.attempts) == (JobState.NEW, 1)
