"""Shared fixtures. The `redis` fixture runs each test on fakeredis AND on a real
engine (started by this test session on a free port): one switch, one copy of
each test. The broker suite adds a third engine, a real 3-primary Redis Cluster
(tests/broker/conftest.py). Every test gets its own key prefix instead of a
FLUSHALL."""

from __future__ import annotations

import time
import uuid
from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager
from pathlib import Path

import fakeredis
import httpx
import pytest
from redis.asyncio import Redis, RedisCluster

from api.app import create_app
from api.settings import ApiSettings
from broker.connection import create_redis
from broker.queue import Queue
from broker.settings import BrokerSettings
from sdq.doubles.fake_hcaptcha import FakeHCaptcha
from sdq.embedded_redis import EmbeddedRedis
from sdq.supervisor import free_port
from tests.support.redis_servers import ClusterServers

BACKEND_SECRET = "backend-secret-1-of-the-test-suite"
ROTATED_SECRET = "backend-secret-2-of-the-test-suite"
HCAPTCHA_SECRET = "hcaptcha-secret-of-the-test-suite"


@pytest.fixture(scope="session")
def redis_engine() -> Iterator[EmbeddedRedis]:
    engine = EmbeddedRedis().start()
    yield engine
    engine.stop()


@pytest.fixture(scope="session")
def fake_hcaptcha() -> Iterator[FakeHCaptcha]:
    fake = FakeHCaptcha().start()
    yield fake
    fake.stop()


@pytest.fixture(scope="session")
def redis_cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ClusterServers]:
    """Three primaries on loopback, started once per session (about 2 s), killed at its end."""
    folder = Path(tmp_path_factory.mktemp("redis-cluster"))
    started = time.monotonic()
    cluster = ClusterServers(folder)
    try:
        cluster.start()
        (folder / "started_s").write_text(f"{time.monotonic() - started:.2f}\n")
        yield cluster
    finally:
        cluster.stop()


ENGINES = ("fakeredis", "real")


@asynccontextmanager
async def engine_client(
    request: pytest.FixtureRequest, engine: str
) -> AsyncIterator[Redis | RedisCluster]:
    """A client of one engine: fakeredis, the session's real engine or its cluster."""
    client: Redis | RedisCluster
    if engine == "fakeredis":
        client = fakeredis.FakeAsyncRedis(decode_responses=True)
    elif engine == "real":
        real: EmbeddedRedis = request.getfixturevalue("redis_engine")
        client = Redis.from_url(real.url, decode_responses=True)
    else:  # built as SDQ_REDIS_CLUSTER builds it in production
        cluster: ClusterServers = request.getfixturevalue("redis_cluster")
        client = create_redis(BrokerSettings(redis_url=cluster.url, redis_cluster=True))
    try:
        yield client
    finally:
        await client.aclose()


@pytest.fixture(params=ENGINES)
async def redis(request: pytest.FixtureRequest) -> AsyncIterator[Redis | RedisCluster]:
    async with engine_client(request, request.param) as client:
        yield client


@pytest.fixture
def prefix() -> str:
    return f"test-{uuid.uuid4().hex[:12]}"


@pytest.fixture
def settings(prefix: str, fake_hcaptcha: FakeHCaptcha) -> ApiSettings:
    return ApiSettings(
        key_prefix=prefix,
        backend_secrets=[BACKEND_SECRET, ROTATED_SECRET],
        hcaptcha_secret=HCAPTCHA_SECRET,
        hcaptcha_sitekey="site-key",
        hcaptcha_verify_url=fake_hcaptcha.url,
        hcaptcha_timeout_s=1.0,
        access_log=False,
    )


@pytest.fixture
def queue(redis: Redis, settings: ApiSettings) -> Queue:
    return Queue(redis, settings)


@pytest.fixture
async def client(redis: Redis, settings: ApiSettings) -> AsyncIterator[httpx.AsyncClient]:
    app = create_app(settings, redis=redis)
    async with app.router.lifespan_context(app):
        transport = httpx.ASGITransport(app=app, client=("203.0.113.7", 50000))
        async with httpx.AsyncClient(transport=transport, base_url="http://sdq.test") as http:
            yield http


@pytest.fixture(scope="session")
def s3_endpoint() -> Iterator[str]:
    """An S3-compatible server on loopback (moto's), reached through the real boto3."""
    from moto.server import ThreadedMotoServer

    port = free_port()
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=port, verbose=False)
    server.start()
    yield f"http://127.0.0.1:{port}"
    server.stop()


@pytest.fixture
def credentials(monkeypatch: pytest.MonkeyPatch) -> None:
    """Fake AWS credentials for the loopback S3 server (boto3 insists on some)."""
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "test-key")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "test-secret")
