"""The API's Redis client under a burst: more commands in flight than pooled
connections wait for a free one (within the timeout) instead of failing."""

from __future__ import annotations

import asyncio

from broker.connection import create_redis
from broker.settings import BrokerSettings
from sdq.embedded_redis import EmbeddedRedis


async def test_create_redis_queues_a_burst_beyond_the_pool_instead_of_failing(
    redis_engine: EmbeddedRedis,
) -> None:
    client = create_redis(BrokerSettings(redis_url=redis_engine.url))
    try:
        replies = await asyncio.gather(*(client.ping() for _ in range(500)))
        assert all(replies)
    finally:
        await client.aclose()
