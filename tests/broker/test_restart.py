"""Persistence: the embedded engine with a data folder (append-only file) keeps every
job across a crash (SIGKILL) and a restart on the same port and folder."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import pytest
from redis.asyncio import Redis

from broker.errors import StorageUnavailable
from broker.queue import Queue
from broker.settings import BrokerSettings
from broker.states import JobState
from sdq.embedded_redis import EmbeddedRedis
from tests.broker.helpers import add, check_indexes, eventually, job_hashes, token


@pytest.fixture
def engines() -> Iterator[list[EmbeddedRedis]]:
    """Engines this test starts; whatever is still running at the end is stopped."""
    started: list[EmbeddedRedis] = []
    yield started
    for engine in started:
        engine.stop()


@pytest.fixture
async def clients() -> AsyncIterator[list[Redis]]:
    opened: list[Redis] = []
    yield opened
    for client in opened:
        await client.aclose()


async def snapshot(queue: Queue) -> dict[str, Any]:
    """Everything the queue keeps: job hashes, ordered sets, counters."""
    k, redis = queue.keys, queue.redis
    indexes = {
        name: await redis.zrange(key, 0, -1, withscores=True)
        for name, key in (
            ("waiting", k.waiting),
            ("active", k.active),
            ("reserved", k.reserved),
            ("leases", k.leases),
        )
    }
    return {
        "jobs": await job_hashes(queue),
        "indexes": indexes,
        "stats": await redis.hgetall(k.stats),
        "seq": await redis.get(k.seq),
    }


async def test_restart_after_a_crash_keeps_every_job(
    tmp_path: Path, engines: list[EmbeddedRedis], clients: list[Redis], prefix: str
) -> None:
    first = EmbeddedRedis(data_dir=tmp_path / "data").start()
    engines.append(first)
    clients.append(Redis.from_url(first.url, decode_responses=True))
    settings = BrokerSettings(key_prefix=prefix, max_attempts=1)
    queue = Queue(clients[0], settings)
    for i in range(6):
        await queue.add_job(token(i), f"prompt {i}: a lighthouse", i + 1, 1024, 576)
    await queue.next_job()  # job 0 reserved
    await queue.set_state(token(1), JobState.PENDING)  # job 1 pending (legacy lease)
    claim = await queue.claim("w")  # job 2 complete
    assert claim is not None
    await queue.complete(claim.job.token, claim.fence)
    claim = await queue.claim("w")  # job 3 failed
    assert claim is not None
    await queue.release(claim.job.token, claim.fence, "broken")
    before = await snapshot(queue)
    ttl_before = await clients[0].pttl(queue.keys.job(token(2)))

    first.kill()
    second = EmbeddedRedis(data_dir=tmp_path / "data", port=first.port).start()
    engines.append(second)
    clients.append(Redis.from_url(second.url, decode_responses=True))
    queue = Queue(clients[1], settings)

    assert await snapshot(queue) == before
    assert len(before["jobs"]) == 6
    states = [(await queue.status(token(i))).state for i in range(6)]
    assert states == ["new", "pending", "complete", "failed", "new", "new"]
    assert 0 < await clients[1].pttl(queue.keys.job(token(2))) <= ttl_before
    await check_indexes(queue)


async def test_restart_queue_carries_on_in_order(
    tmp_path: Path, engines: list[EmbeddedRedis], clients: list[Redis], prefix: str
) -> None:
    first = EmbeddedRedis(data_dir=tmp_path / "data").start()
    engines.append(first)
    clients.append(Redis.from_url(first.url, decode_responses=True))
    settings = BrokerSettings(key_prefix=prefix)
    queue = Queue(clients[0], settings)
    for i in range(3):
        await add(queue, i, created_ms=1_000)

    first.kill()
    second = EmbeddedRedis(data_dir=tmp_path / "data", port=first.port).start()
    engines.append(second)
    clients.append(Redis.from_url(second.url, decode_responses=True))
    queue = Queue(clients[1], settings)
    await add(queue, 3, created_ms=1_000)  # same time: insertion order decides

    order = []
    while (claim := await queue.claim("w")) is not None:
        order.append(claim.job.token)
    assert order == [token(i) for i in range(4)]


async def test_restart_a_long_lived_queue_recovers_with_an_empty_script_cache(
    tmp_path: Path, engines: list[EmbeddedRedis], clients: list[Redis], prefix: str
) -> None:
    first = EmbeddedRedis(data_dir=tmp_path / "data").start()
    engines.append(first)
    clients.append(Redis.from_url(first.url, decode_responses=True))
    queue = Queue(clients[0], BrokerSettings(key_prefix=prefix))
    await add(queue, 1)

    first.kill()
    engines.append(EmbeddedRedis(data_dir=tmp_path / "data", port=first.port).start())

    async def answers() -> JobState | None:
        # The pooled connection died with the engine: a call may fail once.
        try:
            return (await queue.status(token(1))).state
        except StorageUnavailable:
            return None

    assert await eventually(answers) is JobState.NEW
    await add(queue, 2)
    claim = await queue.claim("w")
    assert claim is not None and claim.job.token == token(1)
    await queue.complete(claim.job.token, claim.fence)
    assert (await queue.status(token(2))).queue_length == 0


async def test_restart_keeps_jobs_acknowledged_just_before_the_crash(
    tmp_path: Path, engines: list[EmbeddedRedis], clients: list[Redis], prefix: str
) -> None:
    # Rounds of add-then-SIGKILL: a policy that holds writes back after the reply
    # (appendfsync everysec while an fsync is slow) loses some of them here.
    settings = BrokerSettings(key_prefix=prefix)
    port = EmbeddedRedis(data_dir=tmp_path / "data").port
    for round_ in range(5):
        engine = EmbeddedRedis(data_dir=tmp_path / "data", port=port).start()
        engines.append(engine)
        clients.append(Redis.from_url(engine.url, decode_responses=True))
        queue = Queue(clients[-1], settings)
        assert await queue.redis.zcard(queue.keys.active) == 10 * round_
        await asyncio.gather(*(add(queue, 10 * round_ + i) for i in range(10)))
        engine.kill()
