"""`sdq admin` through the real command (`python -m sdq admin ...` in a subprocess, its
settings from SDQ_*) against a real engine, with the real API on the same queue:
pause/resume, retry, cancel, cancel-client, status; each audited, no secret shown."""

from __future__ import annotations

import asyncio
import json
import os
import subprocess
import sys
import uuid
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import httpx
import pytest
from redis.asyncio import Redis

from api.app import create_app
from api.settings import ApiSettings
from broker.queue import Queue
from broker.states import JobState
from sdq.embedded_redis import EmbeddedRedis
from tests.conftest import BACKEND_SECRET

ROOT = Path(__file__).resolve().parents[2]
PASSWORD = "admin-password-" + uuid.uuid4().hex
CLIENT = "198.51.100.44"
ADD = {"prompt": "a cat", "number": "1", "resolution": "768x576", "captcha": "good-1"}


@pytest.fixture
def admin_url(redis_engine: EmbeddedRedis) -> Iterator[str]:
    """A Redis user with a password, so the test can see that no output carries it."""
    import redis as sync_redis

    user = f"ops-{uuid.uuid4().hex[:8]}"
    server = sync_redis.Redis(port=redis_engine.port)
    server.acl_setuser(user, enabled=True, passwords=[f"+{PASSWORD}"], keys="*",
                       commands=["+@all"], channels="*")  # fmt: skip
    yield f"redis://{user}:{PASSWORD}@127.0.0.1:{redis_engine.port}/0"
    server.acl_deluser(user)
    server.close()


def sdq_admin(url: str, prefix: str, *args: str) -> subprocess.CompletedProcess[str]:
    env = {
        **os.environ,
        "PYTHONPATH": str(ROOT),
        "SDQ_REDIS_URL": url,
        "SDQ_KEY_PREFIX": prefix,
        "SDQ_LOG_JSON": "true",
    }
    done = subprocess.run(
        [sys.executable, "-m", "sdq", "admin", *args, "--by", "ops@bastion"],
        capture_output=True, text=True, timeout=60, env=env, check=False,
    )  # fmt: skip
    assert PASSWORD not in done.stdout + done.stderr
    return done


def audit_lines(done: subprocess.CompletedProcess[str]) -> list[dict[str, str]]:
    return [json.loads(line) for line in done.stderr.splitlines() if line.startswith("{")]


@pytest.fixture
async def api(
    redis_engine: EmbeddedRedis, settings: ApiSettings
) -> AsyncIterator[tuple[httpx.AsyncClient, Queue]]:
    redis = Redis.from_url(redis_engine.url, decode_responses=True)
    app = create_app(settings, redis=redis)
    async with app.router.lifespan_context(app):
        transport = httpx.ASGITransport(app=app, client=(CLIENT, 50000))
        async with httpx.AsyncClient(transport=transport, base_url="http://sdq.test") as http:
            yield http, Queue(redis, settings)
    await redis.aclose()


async def run(url: str, prefix: str, *args: str) -> subprocess.CompletedProcess[str]:
    return await asyncio.to_thread(sdq_admin, url, prefix, *args)


async def test_admin_command_pause_and_resume_the_real_api(
    api: tuple[httpx.AsyncClient, Queue], admin_url: str, prefix: str
) -> None:
    http, _ = api
    paused = await run(admin_url, prefix, "pause")
    assert (paused.returncode, paused.stdout.strip()) == (0, "pause: paused")
    (line,) = audit_lines(paused)
    assert (line["action"], line["by"], line["message"]) == (
        "pause",
        "ops@bastion",
        "admin pause - by ops@bastion: paused",
    )

    token = (await http.get("/addJob", params=ADD)).json()  # adds go on
    assert (await http.get("/getNextJob", params={"secret": BACKEND_SECRET})).status_code == 404
    view = (await http.get(f"/v2/jobs/{token}")).json()
    assert view["queue_paused"] is True and "paused" in view["notice"]

    resumed = await run(admin_url, prefix, "resume")
    assert resumed.stdout.strip() == "resume: running (was paused)"
    job = await http.get("/getNextJob", params={"secret": BACKEND_SECRET})
    assert (job.status_code, job.json()["Token"]) == (200, token)


async def test_admin_command_retry_puts_a_failed_job_back(
    api: tuple[httpx.AsyncClient, Queue], admin_url: str, prefix: str
) -> None:
    http, queue = api
    token = (await http.get("/addJob", params=ADD)).json()
    one_try = Queue(queue.redis, queue.settings.model_copy(update={"max_attempts": 1}))
    claim = await one_try.claim("gpu-1")
    assert claim is not None
    await one_try.release(token, claim.fence, "out of memory")
    assert (await http.get("/getJobStatus", params={"token": token})).json()["State"] == "failed"

    done = await run(admin_url, prefix, "retry", token)

    assert (done.returncode, done.stdout.strip()) == (0, f"retry {token}: new again")
    status = (await http.get("/getJobStatus", params={"token": token})).json()
    assert (status["State"], status["QueueLength"]) == ("new", 0)
    again = await run(admin_url, prefix, "retry", token)  # new, not failed: refused
    assert again.returncode == 1
    assert "refused" in audit_lines(again)[0]["message"]
    unknown = await run(admin_url, prefix, "retry", "0" * 32)
    assert unknown.returncode == 1


async def test_admin_command_cancel_and_cancel_client(
    api: tuple[httpx.AsyncClient, Queue], admin_url: str, prefix: str
) -> None:
    http, queue = api
    tokens = [(await http.get("/addJob", params=ADD)).json() for _ in range(3)]
    claim = await queue.claim("gpu-1")
    assert claim is not None and claim.job.token == tokens[0]

    one = await run(admin_url, prefix, "cancel", tokens[2])
    assert one.stdout.strip() == f"cancel {tokens[2]}: cancelled (was new)"
    rest = await run(admin_url, prefix, "cancel-client", CLIENT)
    assert rest.stdout.strip() == (
        f"cancel-client {CLIENT}: 2 jobs cancelled, 0 entries of lost jobs dropped"
    )

    views = [(await http.get(f"/v2/jobs/{t}")).json() for t in tokens]
    assert [v["state"] for v in views] == ["cancelled"] * 3
    assert views[0]["cancel_requested"] is True  # it was rendering: its worker stops
    assert (await queue.status(tokens[0])).state is JobState.CANCELLED

    status = await run(admin_url, prefix, "status")
    assert status.returncode == 0
    assert "queue: running" in status.stdout
    assert f"cancel-client {CLIENT} by ops@bastion: 2 cancelled, 0 dropped" in status.stdout
    assert f"cancel {tokens[2]} by ops@bastion: cancelled (was new)" in status.stdout


async def test_admin_command_says_so_when_redis_is_unreachable(prefix: str) -> None:
    done = await run("redis://:nope@127.0.0.1:1/0", prefix, "pause")
    assert done.returncode == 3
    assert "Redis unreachable" in done.stderr
