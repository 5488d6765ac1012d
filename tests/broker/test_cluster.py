"""The Redis Cluster engine: a real cluster of three primaries, each queue served by
the node that owns its hash tag, and SDQ_REDIS_CLUSTER's settings and client."""

from __future__ import annotations

import httpx
import pytest
from pydantic import SecretStr, ValidationError
from redis.asyncio import RedisCluster
from redis.crc import key_slot

from api.app import create_app
from api.settings import ApiSettings
from broker.connection import create_redis
from broker.keys import QueueKeys
from broker.queue import Queue
from broker.renders import RenderSample
from broker.settings import BrokerSettings
from broker.states import JobState
from gpu_worker.settings import WorkerSettings
from gpu_worker.sources.redis import RedisSource
from sdq.embedded_redis import free_port
from tests.broker.helpers import add, check_indexes, token
from tests.conftest import BACKEND_SECRET
from tests.support.redis_servers import ClusterServers, client

ADD = {"prompt": "a cat", "number": "3", "resolution": "768x576", "captcha": "good-1"}


def test_cluster_fixture_is_three_primaries_serving_every_slot(
    redis_cluster: ClusterServers,
) -> None:
    node = client(redis_cluster.ports[0])
    try:
        info = node.cluster("info")
        assert (info["cluster_state"], info["cluster_known_nodes"]) == ("ok", "3")
        assert info["cluster_slots_assigned"] == "16384"
    finally:
        node.close()


def prefixes_on_two_nodes(cluster: RedisCluster) -> tuple[str, str]:
    """Two queue prefixes whose keys live on different primaries."""
    owner: dict[str, str] = {}
    for i in range(100):
        prefix = f"split-{i}"
        node = cluster.get_node_from_key(QueueKeys(prefix).waiting)
        owner.setdefault(node.name, prefix)
        if len(owner) == 2:
            first, second = owner.values()
            return first, second
    raise AssertionError("no two prefixes on two nodes")


async def test_cluster_each_queue_is_served_by_the_node_owning_its_tag(
    redis_cluster: ClusterServers,
) -> None:
    settings = BrokerSettings(redis_url=redis_cluster.url, redis_cluster=True)
    redis = create_redis(settings)
    assert isinstance(redis, RedisCluster)
    try:
        await redis.initialize()
        first, second = (Queue(redis, settings.model_copy(update={"key_prefix": p}))
                         for p in prefixes_on_two_nodes(redis))  # fmt: skip
        for queue in (first, second):
            await add(queue, 1)
            await add(queue, 2)
            claim = await queue.claim("w")
            assert claim is not None and claim.job.token == token(1)
            await queue.set_state(token(2), JobState.PENDING)
            await queue.complete(token(1), claim.fence)
            await check_indexes(queue)
        assert key_slot(first.keys.tag.encode()) != key_slot(second.keys.tag.encode())
        assert (await first.counts())["complete"] == (await second.counts())["complete"] == 1
    finally:
        await redis.aclose()


async def test_cluster_url_may_name_several_startup_nodes(
    redis_cluster: ClusterServers, prefix: str
) -> None:
    dead = free_port()  # the first node named is down: the client tries the next
    hosts = ",".join([f"127.0.0.1:{dead}", *(f"127.0.0.1:{p}" for p in redis_cluster.ports)])
    settings = BrokerSettings(redis_url=f"redis://{hosts}/0", redis_cluster=True, key_prefix=prefix)
    redis = create_redis(settings)
    try:
        queue = Queue(redis, settings)
        await add(queue, 1)
        assert (await queue.status(token(1))).state is JobState.NEW
    finally:
        await redis.aclose()


def test_cluster_settings_refuse_sentinels_and_a_database_other_than_0() -> None:
    with pytest.raises(ValidationError, match="exclude each other"):
        BrokerSettings(redis_cluster=True, redis_sentinels=["127.0.0.1:26379"])
    with pytest.raises(ValidationError, match="only database 0"):
        BrokerSettings(redis_cluster=True, redis_url=SecretStr("redis://127.0.0.1:7000/3"))
    assert BrokerSettings(redis_cluster=True, redis_url=SecretStr("redis://h:7000")).redis_cluster


def test_cluster_setting_comes_from_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    assert BrokerSettings().redis_cluster is False
    monkeypatch.setenv("SDQ_REDIS_CLUSTER", "true")

    assert BrokerSettings().redis_cluster is True


async def test_cluster_serves_the_api_end_to_end(
    redis_cluster: ClusterServers, settings: ApiSettings
) -> None:
    """The app on SDQ_REDIS_CLUSTER (its own client, from the settings): the legacy
    paths, /v2/queue and /metrics all answer from the cluster."""
    on_cluster = settings.model_copy(
        update={"redis_url": SecretStr(redis_cluster.url), "redis_cluster": True}
    )
    app = create_app(on_cluster)
    async with app.router.lifespan_context(app):
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://sdq.test") as http:
            added = await http.get("/addJob", params=ADD)
            assert added.status_code == 200
            next_job = (await http.get("/getNextJob", params={"secret": BACKEND_SECRET})).json()
            assert next_job["Token"] == added.json()
            backend = {"token": added.json(), "secret": BACKEND_SECRET, "state": "pending"}
            assert (await http.get("/setJobStatus", params=backend)).json() == "ok"
            status = (await http.get("/getJobStatus", params={"token": added.json()})).json()
            assert (status["State"], status["QueueLength"]) == ("pending", 0)
            assert (await http.get("/v2/queue")).json()["depth"] == {"new": 0, "pending": 1}
            metrics = (await http.get("/metrics")).text
    assert "sdq_redis_up 1.0" in metrics
    assert "sdq_queue_pending_images 3.0" in metrics


async def test_cluster_serves_a_direct_worker(redis_cluster: ClusterServers, prefix: str) -> None:
    """The worker's Redis transport on SDQ_REDIS_CLUSTER: it waits (BLPOP), claims,
    reports, renews and completes through its own cluster clients."""
    settings = WorkerSettings(
        redis_url=redis_cluster.url, redis_cluster=True, key_prefix=prefix, idle_poll_s=0.2
    )
    source = RedisSource(settings, "gpu-1")
    try:
        await add(source.queue, 1, number=2)
        await source.wait_for_work()
        claim = await source.claim()
        assert claim is not None and claim.job.token == token(1)
        await source.report([RenderSample(576, 576, 2, 900)], leaving=False)
        await source.renew(claim, progress=1)
        await source.complete(claim)
        f = await source.queue.figures()
        assert (f.counters["complete"], f.workers_seen, f.pending_images) == (1, 1, 0)
    finally:
        await source.aclose()
