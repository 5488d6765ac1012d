"""Request rates per client, counted in Redis so that every replica shares them.

The `limits` library does the counting (a moving window, one Lua call per limit
per request) on the queue's own Redis: through the queue's connection pool on
one server (its TLS, password and Sentinel settings with it), or through the
library's cluster storage on a Redis Cluster. A rate is written in the
library's syntax, e.g. "10/minute;100/hour" (several limits, all must hold);
"" turns it off.
"""

from __future__ import annotations

import math
import time
from collections.abc import Awaitable
from typing import TypeVar
from urllib.parse import urlsplit

from limits import RateLimitItem, parse_many
from limits.aio.storage import RedisClusterStorage, RedisStorage, Storage
from limits.aio.strategies import MovingWindowRateLimiter
from redis.asyncio import Redis, RedisCluster
from redis.exceptions import RedisError

from api.errors import RateLimited
from broker.errors import StorageUnavailable
from broker.queue import Queue

T = TypeVar("T")


def rate_storage(queue: Queue, redis_url: str) -> Storage:
    """The limits' storage on the queue's Redis (keys under the queue's prefix)."""
    prefix = queue.keys.limits_prefix
    if isinstance(queue.redis, Redis):
        return RedisStorage(
            "async+redis://",  # unused: the queue's pool is
            implementation="redispy",
            key_prefix=prefix,
            # limits documents `connection_pool` but types its **options as scalars
            connection_pool=queue.redis.connection_pool,  # type: ignore[arg-type]
        )
    parts = urlsplit(redis_url)  # a cluster: its startup node(s), credentials, TLS
    scheme = "async+rediss+cluster" if parts.scheme == "rediss" else "async+redis+cluster"
    return RedisClusterStorage(
        f"{scheme}://{parts.netloc}", implementation="redispy", key_prefix=prefix
    )


async def close_rate_storage(storage: Storage) -> None:
    """Closes the cluster client the library's cluster storage built for itself (it
    has no close of its own); a single server's storage uses the queue's pool."""
    client = getattr(getattr(storage, "bridge", None), "storage", None)
    if isinstance(client, RedisCluster):
        await client.aclose()


class RateLimit:
    """One named rate (e.g. "addJob"), counted per client key."""

    def __init__(self, storage: Storage, name: str, rate: str) -> None:
        self.name = name
        self._items: list[RateLimitItem] = parse_many(rate) if rate.strip() else []
        self._limiter = MovingWindowRateLimiter(storage)

    @property
    def enabled(self) -> bool:
        return bool(self._items)

    async def hit(self, key: str) -> None:
        """Counts one request; raises RateLimited once the client is over its rate."""
        for item in self._items:
            if not await self._call(self._limiter.hit(item, self.name, key)):
                raise RateLimited(await self._retry_after(item, key))

    async def check(self, key: str) -> None:
        """Raises RateLimited if the client is over its rate, counting nothing."""
        for item in self._items:
            if not await self._call(self._limiter.test(item, self.name, key)):
                raise RateLimited(await self._retry_after(item, key))

    async def _retry_after(self, item: RateLimitItem, key: str) -> int:
        stats = await self._call(self._limiter.get_window_stats(item, self.name, key))
        return max(1, math.ceil(stats.reset_time - time.time()))

    @staticmethod
    async def _call(call: Awaitable[T]) -> T:
        try:
            return await call
        except (RedisError, OSError) as exc:
            raise StorageUnavailable(type(exc).__name__) from exc
