"""The Redis server under the queue: is it configured to keep jobs, and is it the same
server (with the same data) it was?

- The queue's indexes assume no key is ever evicted and that acknowledged writes
  survive a restart: `maxmemory-policy noeviction` and persistence (AOF or RDB).
  `server_problems` names what is not so (managed services that hide CONFIG are
  reported as unknown, not as unsafe). On a cluster one node answers for all:
  they are meant to run with one configuration.
- An epoch key, written once when a queue first meets its Redis, tells a Redis
  that came back empty (a restart without persistence, a wiped volume, a new
  primary that never had the data) from one that kept its data: the key is gone.
"""

from __future__ import annotations

import secrets
from dataclasses import dataclass
from typing import Any

from redis.asyncio import Redis, RedisCluster
from redis.exceptions import RedisError, ResponseError

from broker.errors import StorageUnavailable


@dataclass(frozen=True, slots=True)
class Epoch:
    """The queue's epoch: an id and when it began (ms, Redis clock)."""

    id: str
    started_ms: int
    created_now: bool  # this call wrote it: a first start, or Redis came back empty

    @classmethod
    def parse(cls, value: str, created_now: bool) -> Epoch:
        started, _, ident = value.partition(":")
        return cls(ident, int(started) if started.isdigit() else 0, created_now)


async def ensure_epoch(redis: Redis | RedisCluster, key: str) -> Epoch:
    """The queue's epoch, written first if there is none (SET NX: one writer wins)."""
    try:
        seconds, micros = await redis.time()
        value = f"{int(seconds) * 1000 + int(micros) // 1000}:{secrets.token_hex(8)}"
        created = bool(await redis.set(key, value, nx=True))
        stored = await redis.get(key)
    except (RedisError, OSError) as exc:
        raise StorageUnavailable(type(exc).__name__) from exc
    return Epoch.parse(str(stored or value), created)


async def server_problems(redis: Redis | RedisCluster) -> list[str]:
    """What in the server's configuration can lose jobs; [] when nothing can."""
    try:
        policy = await _config(redis, "maxmemory-policy")
        persistence: dict[str, Any] = await redis.info("persistence")
    except (RedisError, OSError) as exc:
        raise StorageUnavailable(type(exc).__name__) from exc
    problems = []
    if policy is None:
        problems.append("maxmemory-policy unknown (CONFIG GET refused): it must be noeviction")
    elif policy != "noeviction":
        problems.append(f"maxmemory-policy is {policy}: Redis may evict job keys; set noeviction")
    aof = str(persistence.get("aof_enabled", "0")) == "1"
    rdb = int(persistence.get("rdb_changes_since_last_save", -1)) >= 0 and _saves(
        await _config(redis, "save")
    )
    if not aof and not rdb:
        problems.append(
            "persistence is off (no AOF, no RDB saves): a restart loses every job; "
            "run Redis with --appendonly yes"
        )
    return problems


async def _config(redis: Redis | RedisCluster, name: str) -> str | None:
    try:
        reply = await redis.config_get(name)
    except ResponseError:  # managed services often disable CONFIG
        return None
    value = reply.get(name) if isinstance(reply, dict) else None
    return None if value is None else str(value)


def _saves(save: str | None) -> bool:
    """Whether RDB snapshots are scheduled (`save` is "" when they are off)."""
    return bool(save and save.strip())
