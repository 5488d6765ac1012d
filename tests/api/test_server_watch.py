"""The API says loudly what makes Redis lose jobs (issue: a Redis restarted empty lost
every queued job silently; eviction and missing persistence went unnoticed)."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path

import httpx
import pytest
from redis.asyncio import Redis

from api.app import create_app
from api.settings import ApiSettings
from sdq.embedded_redis import EmbeddedRedis

pytestmark = pytest.mark.slow  # each test runs its own Redis process


@asynccontextmanager
async def app_on(engine: EmbeddedRedis, settings: ApiSettings) -> AsyncIterator[httpx.AsyncClient]:
    redis = Redis.from_url(engine.url, decode_responses=True, socket_timeout=1)
    app = create_app(settings.model_copy(update={"sweep_interval_s": 0.1}), redis=redis)
    try:
        async with app.router.lifespan_context(app):
            transport = httpx.ASGITransport(app=app)
            async with httpx.AsyncClient(transport=transport, base_url="http://sdq.test") as http:
                yield http
    finally:
        await redis.aclose()


async def test_a_redis_with_aof_and_noeviction_raises_no_warning(
    settings: ApiSettings, tmp_path: Path
) -> None:
    engine = EmbeddedRedis(data_dir=tmp_path).start()
    try:
        async with app_on(engine, settings) as http:
            assert (await http.get("/readyz")).json() == {"status": "ready"}
            assert "sdq_redis_config_problems 0.0" in (await http.get("/metrics")).text
    finally:
        engine.stop()


async def test_no_persistence_and_an_eviction_policy_are_warned_of_in_the_log_and_readyz(
    settings: ApiSettings, caplog: pytest.LogCaptureFixture
) -> None:
    engine = EmbeddedRedis().start()  # --appendonly no --save ''
    try:
        admin = Redis.from_url(engine.url)
        await admin.config_set("maxmemory-policy", "allkeys-lru")
        await admin.aclose()
        async with app_on(engine, settings) as http:
            ready = await http.get("/readyz")
            metrics = (await http.get("/metrics")).text
    finally:
        engine.stop()
    assert ready.status_code == 200  # it serves, but says why it should not
    warnings = ready.json()["warnings"]
    assert any("maxmemory-policy is allkeys-lru" in w for w in warnings)
    assert any("persistence is off" in w for w in warnings)
    assert "sdq_redis_config_problems 2.0" in metrics
    logged = [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING]
    assert sum("Redis can lose jobs" in line for line in logged) == 2


async def test_a_redis_that_comes_back_empty_is_an_error_line_and_a_counter(
    settings: ApiSettings, caplog: pytest.LogCaptureFixture
) -> None:
    engine = EmbeddedRedis().start()
    try:
        async with app_on(engine, settings) as http:
            assert "sdq_redis_came_back_empty_total 0.0" in (await http.get("/metrics")).text
            engine.kill()  # no persistence: it restarts empty
            engine = EmbeddedRedis(port=engine.port).start()
            for _ in range(50):
                await asyncio.sleep(0.1)
                if "sdq_redis_came_back_empty_total 1.0" in (await http.get("/metrics")).text:
                    break
            else:
                raise AssertionError("the empty Redis was not noticed")
    finally:
        engine.stop()
    errors = [r.getMessage() for r in caplog.records if r.levelno == logging.ERROR]
    assert any(line.startswith("Redis came back empty") for line in errors)
