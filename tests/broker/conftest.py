"""Fixtures of the broker tests that need the real engine only (races, script cache,
persistence); everything else runs through the parametrized `queue` fixture."""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest
from redis.asyncio import Redis

from broker.queue import Queue
from broker.settings import BrokerSettings
from sdq.embedded_redis import EmbeddedRedis


@pytest.fixture
async def real_redis(redis_engine: EmbeddedRedis) -> AsyncIterator[Redis]:
    client = Redis.from_url(redis_engine.url, decode_responses=True)
    yield client
    await client.aclose()


@pytest.fixture
def real_queue(real_redis: Redis, prefix: str) -> Queue:
    return Queue(real_redis, BrokerSettings(key_prefix=prefix))
