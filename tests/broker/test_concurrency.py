"""Races on the real engine and on the Redis Cluster: many callers over many
connections (as API replicas and workers are) and exactly one winner per job, because
each check-and-change is one Lua script."""

from __future__ import annotations

import asyncio
from collections import Counter
from collections.abc import AsyncIterator

import pytest
from redis.asyncio import Redis, RedisCluster

from broker.connection import create_redis
from broker.errors import InvalidTransition, TokenExists
from broker.job import Claim
from broker.queue import Queue
from broker.settings import BrokerSettings
from broker.states import JobState
from sdq.embedded_redis import EmbeddedRedis
from tests.broker.helpers import add, check_indexes, token
from tests.support.redis_servers import ClusterServers

REPLICAS = 4


@pytest.fixture(params=["real", "cluster"])
async def replicas(request: pytest.FixtureRequest, prefix: str) -> AsyncIterator[list[Queue]]:
    """Queues on the same prefix, each with its own client and connection pool, on the
    real server or on the Redis Cluster."""
    clients: list[Redis | RedisCluster] = []
    if request.param == "real":
        engine: EmbeddedRedis = request.getfixturevalue("redis_engine")
        clients = [Redis.from_url(engine.url, decode_responses=True) for _ in range(REPLICAS)]
    else:
        cluster: ClusterServers = request.getfixturevalue("redis_cluster")
        on_cluster = BrokerSettings(redis_url=cluster.url, redis_cluster=True)
        clients = [create_redis(on_cluster) for _ in range(REPLICAS)]
    yield [Queue(client, BrokerSettings(key_prefix=prefix)) for client in clients]
    for client in clients:
        await client.aclose()


async def test_concurrent_set_pending_on_one_job_has_exactly_one_winner(
    replicas: list[Queue],
) -> None:
    await add(replicas[0], 1)

    async def set_pending(i: int) -> str:
        try:
            await replicas[i % REPLICAS].set_state(token(1), JobState.PENDING, worker=f"b{i}")
        except InvalidTransition:
            return "refused"
        return "ok"

    outcomes = Counter(await asyncio.gather(*(set_pending(i) for i in range(50))))

    assert outcomes == {"ok": 1, "refused": 49}
    status = await replicas[0].status(token(1))
    assert (status.state, status.attempts) == (JobState.PENDING, 0)
    assert await replicas[0].redis.hget(replicas[0].keys.job(token(1)), "fence") == "1"


async def test_concurrent_claims_on_eight_jobs_get_eight_different_jobs(
    replicas: list[Queue],
) -> None:
    for i in range(8):
        await add(replicas[0], i)

    claims = await asyncio.gather(*(replicas[i % REPLICAS].claim(f"w{i}") for i in range(8)))

    assert all(claim is not None for claim in claims)
    assert {claim.job.token for claim in claims if claim} == {token(i) for i in range(8)}
    await check_indexes(replicas[0])


async def test_concurrent_claims_racing_on_five_jobs_claim_each_once(
    replicas: list[Queue],
) -> None:
    for i in range(5):
        await add(replicas[0], i)

    claims = await asyncio.gather(*(replicas[i % REPLICAS].claim(f"w{i}") for i in range(20)))

    won: list[Claim] = [claim for claim in claims if claim is not None]
    assert sorted(claim.job.token for claim in won) == [token(i) for i in range(5)]
    assert {claim.fence for claim in won} == {1}
    assert (await replicas[0].counts())["pending"] == 5


async def test_concurrent_next_job_callers_get_different_jobs(replicas: list[Queue]) -> None:
    for i in range(8):
        await add(replicas[0], i)

    handed = await asyncio.gather(*(replicas[i % REPLICAS].next_job() for i in range(10)))

    tokens = [job.token for job in handed if job is not None]
    assert sorted(tokens) == [token(i) for i in range(8)]
    assert handed.count(None) == 2


async def test_concurrent_adds_of_one_token_create_one_job(replicas: list[Queue]) -> None:
    async def add_once(i: int) -> str:
        try:
            await replicas[i % REPLICAS].add_job(token(1), f"prompt {i}", 1, 576, 576)
        except TokenExists:
            return "exists"
        return "added"

    outcomes = Counter(await asyncio.gather(*(add_once(i) for i in range(20))))

    assert outcomes == {"added": 1, "exists": 19}
    assert await replicas[0].redis.zcard(replicas[0].keys.active) == 1


async def test_concurrent_complete_and_requeue_never_lose_the_job(replicas: list[Queue]) -> None:
    # A worker completes while sweeps run everywhere: the job ends complete once.
    await add(replicas[0], 1)
    claim = await replicas[0].claim("w", lease_ms=60_000)
    assert claim is not None

    await asyncio.gather(
        replicas[1].complete(claim.job.token, claim.fence),
        *(replicas[i % REPLICAS].requeue_expired() for i in range(10)),
        *(replicas[i % REPLICAS].next_job() for i in range(5)),
    )

    status = await replicas[0].status(token(1))
    assert status.state is JobState.COMPLETE
    assert (await replicas[0].counts())["complete"] == 1
    await check_indexes(replicas[0])
