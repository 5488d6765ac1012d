"""Fixtures of the broker tests. Every test that takes `redis` (or `queue`) runs on
three engines: fakeredis, a real server and a real 3-primary Redis Cluster through
redis-py's RedisCluster (built by create_redis, as SDQ_REDIS_CLUSTER builds it), so
the claim that the scripts run on a cluster is tested, not assumed.

Tests that stay on one engine on purpose:
- test_restart.py: SIGKILL and restart of an embedded server with its append-only
  file (a server's own persistence; a cluster node would restart the same way).
- test_sentinel.py, test_redis_auth_tls.py: Sentinel failover, passwords and TLS are
  ways to reach one server; a cluster with Sentinel is refused by the settings.
- test_scripts.py's script-cache test on `real_queue`: it reads SCRIPT EXISTS of one
  server (the cluster's flush-and-reload runs in the parametrized test next to it).
- test_connection_pool.py: one test per client kind (the server's blocking pool, the
  cluster client's connections per node).
- test_concurrency.py: races need real servers, so it runs on the real server and the
  cluster, not on fakeredis.
"""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest
from redis.asyncio import Redis, RedisCluster

from broker.queue import Queue
from broker.settings import BrokerSettings
from sdq.embedded_redis import EmbeddedRedis
from tests.conftest import ENGINES, engine_client


@pytest.fixture(params=[*ENGINES, "cluster"])
async def redis(request: pytest.FixtureRequest) -> AsyncIterator[Redis | RedisCluster]:
    async with engine_client(request, request.param) as client:
        yield client


@pytest.fixture
async def real_redis(redis_engine: EmbeddedRedis) -> AsyncIterator[Redis]:
    client = Redis.from_url(redis_engine.url, decode_responses=True)
    yield client
    await client.aclose()


@pytest.fixture
def real_queue(real_redis: Redis, prefix: str) -> Queue:
    return Queue(real_redis, BrokerSettings(key_prefix=prefix))
