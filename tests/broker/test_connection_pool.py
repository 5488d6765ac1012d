"""The API's Redis client under a burst: more commands in flight than pooled
connections wait for a free one (within the timeout) instead of failing. On a Redis
Cluster, the client's connections per node take the same burst of script calls."""

from __future__ import annotations

import asyncio

from broker.connection import create_redis
from broker.queue import Queue
from broker.settings import BrokerSettings
from sdq.embedded_redis import EmbeddedRedis
from tests.broker.helpers import token
from tests.support.redis_servers import ClusterServers


async def test_create_redis_queues_a_burst_beyond_the_pool_instead_of_failing(
    redis_engine: EmbeddedRedis,
) -> None:
    client = create_redis(BrokerSettings(redis_url=redis_engine.url))
    try:
        replies = await asyncio.gather(*(client.ping() for _ in range(500)))
        assert all(replies)
    finally:
        await client.aclose()


async def test_create_redis_on_a_cluster_takes_a_burst_of_first_calls(
    redis_cluster: ClusterServers, prefix: str
) -> None:
    # 500 script calls on a client that has not yet learned the cluster's layout
    settings = BrokerSettings(redis_url=redis_cluster.url, redis_cluster=True, key_prefix=prefix)
    client = create_redis(settings)
    try:
        queue = Queue(client, settings)
        await asyncio.gather(*(queue.add_job(token(i), "a", 1, 576, 576) for i in range(500)))
        assert (await queue.figures()).new == 500
    finally:
        await client.aclose()
