"""Real `sdq worker` processes that freeze, hang or are stopped while starting: images are
fenced like states, a hung GPU ends the process, a stop while loading ends it at once."""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from broker.queue import Queue
from broker.states import JobState
from gpu_worker.sources.redis import RedisSource
from gpu_worker.storage.local import LocalStore
from gpu_worker.worker import EXIT_HUNG, Worker
from sdq.embedded_redis import EmbeddedRedis
from tests.gpu_worker.conftest import REPO, WorkerSettingsFactory, sdq_env
from tests.gpu_worker.support import CountingRenderer
from tests.gpu_worker.test_processes import exit_code, wait_state

pytestmark = pytest.mark.slow

TOKEN = "f0" * 16
IMAGES = 4


def spawn(
    redis_engine: EmbeddedRedis, prefix: str, images: Path, log: Path, **settings: str
) -> subprocess.Popen[bytes]:
    values = {
        "redis_url": redis_engine.url,
        "key_prefix": prefix,
        "transport": "redis",
        "renderer": "test-pattern",
        "storage": "local",
        "images_dir": str(images),
        "idle_poll_s": "0.5",
        **settings,
    }
    env = sdq_env(**values)
    with log.open("wb") as out:
        return subprocess.Popen(
            [sys.executable, "-m", "sdq.cli", "worker"], env=env, cwd=REPO, stderr=out
        )


async def wait_for(condition, timeout_s: float = 30) -> None:  # type: ignore[no-untyped-def]
    deadline = time.monotonic() + timeout_s
    while not condition():
        assert time.monotonic() < deadline, "condition not reached"
        await asyncio.sleep(0.02)


def public(images: Path) -> dict[str, tuple[bytes, int]]:
    return {p.name: (p.read_bytes(), p.stat().st_ino) for p in (images / TOKEN).glob("*.png")}


async def test_frozen_worker_thawed_after_another_completed_writes_no_public_image(
    redis_engine: EmbeddedRedis, prefix: str, real_queue: Queue, tmp_path: Path,
    worker_settings: WorkerSettingsFactory,
) -> None:  # fmt: skip
    images, log = tmp_path / "images", tmp_path / "frozen.log"
    await real_queue.add_job(TOKEN, "frozen mid-job", IMAGES, 576, 576)
    frozen = spawn(
        redis_engine, prefix, images, log,
        worker_lease_ms="1000", test_pattern_ms_per_image="800", steps="10", batch_size="1",
    )  # fmt: skip
    try:
        # after its first batch, in the middle of its second: frozen
        await wait_for(lambda: (images / TOKEN / ".attempt-1" / "00000.png").exists())
        frozen.send_signal(signal.SIGSTOP)
        await wait_state(real_queue, TOKEN, JobState.NEW)  # lease ran out: the sweep took it back

        settings = worker_settings()
        other = Worker(
            RedisSource(settings, "other"), CountingRenderer(), LocalStore(images), settings
        )
        task = asyncio.create_task(other.run())
        await wait_state(real_queue, TOKEN, JobState.COMPLETE)
        other.stop()
        assert await task == 0
        await other.source.aclose()
        finished = public(images)
        assert sorted(finished) == [f"{i:05d}.png" for i in range(IMAGES)]
        before_thaw = log.read_text()

        frozen.send_signal(signal.SIGCONT)
        await wait_for(lambda: "dropped" in log.read_text()[len(before_thaw) :], 20)
        await asyncio.sleep(1.5)  # time to do anything it still would

        assert public(images) == finished  # the same bytes, the same files (inodes)
        after = log.read_text()[len(before_thaw) :]
        assert "rendered" not in after, after  # no further batch
        assert "complete" not in after
        status = await real_queue.status(TOKEN)
        assert (status.state, status.attempts) == (JobState.COMPLETE, 1)
        frozen.send_signal(signal.SIGTERM)
        assert await exit_code(frozen, 20) == 0
    finally:
        if frozen.poll() is None:
            os.kill(frozen.pid, signal.SIGCONT)
            frozen.kill()
            frozen.wait()


async def test_hung_step_ends_the_worker_process_with_3_and_releases_the_job(
    redis_engine: EmbeddedRedis, prefix: str, real_queue: Queue, tmp_path: Path
) -> None:
    await real_queue.add_job(TOKEN, "one endless step", 1, 576, 576)
    worker = spawn(
        redis_engine, prefix, tmp_path / "images", tmp_path / "hung.log",
        test_pattern_ms_per_image="60000", steps="1", step_timeout_s="1",
    )  # fmt: skip
    try:
        await wait_state(real_queue, TOKEN, JobState.PENDING)
        started = time.monotonic()
        assert await exit_code(worker, 20) == EXIT_HUNG
        assert time.monotonic() - started < 10  # not the 60 s the step would take
    finally:
        if worker.poll() is None:
            worker.kill()
            worker.wait()
    status = await real_queue.status(TOKEN)
    assert (status.state, status.attempts) == (JobState.NEW, 1)
    assert "GPU seems hung" in (tmp_path / "hung.log").read_text()


async def test_worker_stopped_while_loading_its_model_exits_at_once(
    redis_engine: EmbeddedRedis, prefix: str, tmp_path: Path
) -> None:
    from tests.gpu_worker.renderers.tiny_pipeline import build_tiny_pipeline

    model = build_tiny_pipeline(tmp_path / "tiny")
    log = tmp_path / "loading.log"
    worker = spawn(
        redis_engine, prefix, tmp_path / "images", log,
        renderer="diffusers", model=str(model), device="cpu",
    )  # fmt: skip
    try:
        await wait_for(lambda: "starting" in log.read_text())
        worker.send_signal(signal.SIGTERM)
        stopped = time.monotonic()
        assert await exit_code(worker, 30) == 0  # handled: not killed by the signal
        assert time.monotonic() - stopped < 3
    finally:
        if worker.poll() is None:
            worker.kill()
            worker.wait()
    text = log.read_text()
    assert "stopped while starting" in text and "loaded on" not in text
