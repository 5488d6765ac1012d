"""Fixtures of the worker tests: worker settings on the test's prefix, and a real
API process (uvicorn) for the HTTP transport."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from collections.abc import AsyncIterator, Callable, Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from redis.asyncio import Redis

from broker.queue import Queue
from gpu_worker.settings import WorkerSettings
from sdq.embedded_redis import EmbeddedRedis
from sdq.supervisor import free_port
from tests.conftest import BACKEND_SECRET

REPO = Path(__file__).resolve().parents[2]

WorkerSettingsFactory = Callable[..., WorkerSettings]


@pytest.fixture
def worker_settings(
    prefix: str, redis_engine: EmbeddedRedis, tmp_path: Path
) -> WorkerSettingsFactory:
    """WorkerSettings on the test's prefix and the real engine, with short timings."""

    def make(**overrides: Any) -> WorkerSettings:
        values: dict[str, Any] = {
            "redis_url": redis_engine.url,
            "key_prefix": prefix,
            "backend_secrets": [BACKEND_SECRET],
            "images_dir": tmp_path / "images",
            "worker_lease_ms": 3000,
            "idle_poll_s": 0.5,
            "http_poll_s": 0.05,
            "retry_base_s": 0.05,
            "retry_cap_s": 0.5,
            "report_interval_s": 0.2,
            **overrides,
        }
        return WorkerSettings(**values)

    return make


def sdq_env(**values: str) -> dict[str, str]:
    """The environment of a child `sdq` process: ours, minus any SDQ_ settings."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("SDQ_")}
    env.update({f"SDQ_{k.upper()}": v for k, v in values.items()})
    return env


@pytest.fixture
def api_process(prefix: str, redis_engine: EmbeddedRedis) -> Iterator[str]:
    """A real API process (uvicorn, uvloop, httptools) on the test's prefix; its URL.
    Reservations are off, so the claim order of jobs is FIFO across transports."""
    port = free_port()
    env = sdq_env(
        redis_url=redis_engine.url,
        key_prefix=prefix,
        backend_secrets=BACKEND_SECRET,
        insecure_skip_captcha="true",
        access_log="false",
        reservation_ms="0",
    )
    process = subprocess.Popen(
        [sys.executable, "-m", "sdq.cli", "api", "--host", "127.0.0.1", "--port", str(port)],
        env=env,
        cwd=REPO,
    )
    url = f"http://127.0.0.1:{port}"
    try:
        wait_http(url + "/healthz", process)
        yield url
    finally:
        process.terminate()
        process.wait(timeout=15)


def wait_http(url: str, process: subprocess.Popen[bytes], timeout_s: float = 20.0) -> None:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"the API process exited with {process.returncode}")
        try:
            if httpx.get(url, timeout=1.0).status_code == 200:
                return
        except httpx.TransportError:
            pass
        time.sleep(0.1)
    raise RuntimeError(f"no answer from {url} within {timeout_s} s")


@pytest.fixture
async def real_queue(
    redis_engine: EmbeddedRedis, worker_settings: WorkerSettingsFactory
) -> AsyncIterator[Queue]:
    """The broker's queue on the real engine, with the worker's settings (its prefix)."""
    client = Redis.from_url(redis_engine.url, decode_responses=True)
    yield Queue(client, worker_settings())
    await client.aclose()
