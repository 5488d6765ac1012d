"""/metrics: queue figures read from Redis at scrape time (so every replica agrees),
HTTP latency per endpoint per process (summed over uvicorn workers in multiprocess
mode), in Prometheus text format as prometheus-client's own parser reads it."""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
from pathlib import Path

import httpx
from prometheus_client.parser import text_string_to_metric_families
from pydantic import SecretStr
from redis.asyncio import Redis

from api.app import create_app
from api.settings import ApiSettings
from broker.admin import QueueAdmin
from broker.queue import Queue
from broker.states import JobState
from sdq.supervisor import free_port
from tests.conftest import BACKEND_SECRET

ADD = {"prompt": "a cat", "number": "1", "resolution": "768x576", "captcha": "good-1"}
Samples = dict[tuple[str, tuple[tuple[str, str], ...]], float]


async def scrape(client: httpx.AsyncClient) -> Samples:
    reply = await client.get("/metrics")
    assert reply.status_code == 200
    assert reply.headers["content-type"].startswith("text/plain; version=0.0.4")
    return parse(reply.text)


def parse(text: str) -> Samples:
    return {
        (sample.name, tuple(sorted(sample.labels.items()))): sample.value
        for family in text_string_to_metric_families(text)
        for sample in family.samples
    }


def value(samples: Samples, name: str, **labels: str) -> float:
    return samples[(name, tuple(sorted(labels.items())))]


async def add_jobs(client: httpx.AsyncClient, count: int, **params: str) -> list[str]:
    return [(await client.get("/addJob", params={**ADD, **params})).json() for _ in range(count)]


async def test_metrics_queue_depth_per_state(client: httpx.AsyncClient, queue: Queue) -> None:
    tokens = await add_jobs(client, 3)
    await queue.set_state(tokens[0], JobState.PENDING)
    await client.get("/getNextJob", params={"secret": BACKEND_SECRET})  # reserves the next one
    samples = await scrape(client)
    assert value(samples, "sdq_queue_jobs", state="new") == 2
    assert value(samples, "sdq_queue_jobs", state="pending") == 1
    assert value(samples, "sdq_queue_reserved_jobs") == 1
    assert value(samples, "sdq_redis_up") == 1


async def test_metrics_waiting_and_pending_images_are_unlabeled_gauges(
    client: httpx.AsyncClient, queue: Queue
) -> None:
    """sdq_queue_waiting_images is what GPU workers are autoscaled on: the images of
    every job not yet claimed (a reserved one included), one series, no labels."""
    tokens = await add_jobs(client, 2, number="4") + await add_jobs(client, 1, number="3")
    assert value(await scrape(client), "sdq_queue_waiting_images") == 11
    await queue.set_state(tokens[0], JobState.PENDING)
    await client.get("/getNextJob", params={"secret": BACKEND_SECRET})  # reserved: still new
    samples = await scrape(client)
    assert value(samples, "sdq_queue_waiting_images") == 7
    assert value(samples, "sdq_queue_pending_images") == 4
    await queue.set_state(tokens[0], JobState.COMPLETE)
    samples = await scrape(client)
    assert value(samples, "sdq_queue_pending_images") == 0
    for name in ("sdq_queue_waiting_images", "sdq_queue_pending_images"):
        assert [labels for (sample, labels) in samples if sample == name] == [()]


async def test_metrics_say_when_the_operator_paused_the_queue(
    client: httpx.AsyncClient, queue: Queue
) -> None:
    admin = QueueAdmin(queue, "ops@host")
    assert value(await scrape(client), "sdq_queue_paused") == 0
    await admin.pause()
    assert value(await scrape(client), "sdq_queue_paused") == 1
    await admin.resume()
    assert value(await scrape(client), "sdq_queue_paused") == 0


async def test_metrics_oldest_waiting_age_comes_from_the_redis_clock(
    client: httpx.AsyncClient, queue: Queue, redis: Redis
) -> None:
    assert value(await scrape(client), "sdq_queue_oldest_waiting_age_seconds") == 0
    (token,) = await add_jobs(client, 1)
    seconds, _ = await redis.time()
    await redis.hset(queue.keys.job(token), "created_ms", 0)  # nothing else reads it here
    members = await redis.zrange(queue.keys.waiting, 0, -1)
    await redis.zadd(queue.keys.waiting, {members[0]: (seconds - 90) * 1000})
    age = value(await scrape(client), "sdq_queue_oldest_waiting_age_seconds")
    assert 90 <= age < 90 + 60


async def test_metrics_job_counters(client: httpx.AsyncClient, queue: Queue) -> None:
    tokens = await add_jobs(client, 3)
    await queue.set_state(tokens[0], JobState.PENDING)
    await queue.set_state(tokens[0], JobState.COMPLETE)
    claim = await queue.claim("w1")
    assert claim is not None
    await queue.release(claim.job.token, claim.fence, "gpu lost")
    samples = await scrape(client)
    assert value(samples, "sdq_jobs_added_total") == 3
    assert value(samples, "sdq_jobs_completed_total") == 1
    assert value(samples, "sdq_jobs_requeued_total") == 1
    assert value(samples, "sdq_jobs_failed_total") == 0


async def test_metrics_claim_to_complete_histogram_per_resolution(
    client: httpx.AsyncClient, queue: Queue
) -> None:
    fast, slow = await add_jobs(client, 2, resolution="1024x576")
    for token in (fast, slow):
        await queue.set_state(token, JobState.PENDING)
    started = int(await queue.redis.hget(queue.keys.job(slow), "started_ms"))
    await queue.redis.hset(queue.keys.job(slow), "started_ms", started - 45_000)
    for token in (fast, slow):
        await queue.set_state(token, JobState.COMPLETE)
    samples = await scrape(client)
    name = "sdq_job_claim_to_complete_seconds"
    res = {"resolution": "1024x576"}
    assert value(samples, f"{name}_bucket", le="1.0", **res) == 1
    assert value(samples, f"{name}_bucket", le="30.0", **res) == 1
    assert value(samples, f"{name}_bucket", le="60.0", **res) == 2
    assert value(samples, f"{name}_bucket", le="+Inf", **res) == 2
    assert value(samples, f"{name}_count", **res) == 2
    assert 45 <= value(samples, f"{name}_sum", **res) < 47


async def test_metrics_http_requests_and_latency_per_endpoint(client: httpx.AsyncClient) -> None:
    (token,) = await add_jobs(client, 1)
    for _ in range(3):
        await client.get("/getJobStatus", params={"token": token})
    await client.get("/getJobStatus", params={"token": "0" * 32})
    await client.get("/healthz")
    await client.get("/no/such/path/0123")
    samples = await scrape(client)
    name = "sdq_http_request_duration_seconds_count"
    assert value(samples, name, endpoint="/getJobStatus", code="200") == 3
    assert value(samples, name, endpoint="/getJobStatus", code="404") == 1
    assert value(samples, name, endpoint="/addJob", code="200") == 1
    assert value(samples, name, endpoint="/healthz", code="200") == 1
    assert value(samples, name, endpoint="other", code="404") == 1
    assert not any("/no/such" in str(labels) for _, labels in samples)
    bucket = "sdq_http_request_duration_seconds_bucket"
    assert value(samples, bucket, endpoint="/getJobStatus", code="200", le="+Inf") == 3


async def test_metrics_every_replica_reports_the_same_queue(
    redis: Redis, settings: ApiSettings, client: httpx.AsyncClient
) -> None:
    await add_jobs(client, 2)
    other = create_app(settings, redis=redis)
    async with other.router.lifespan_context(other):
        transport = httpx.ASGITransport(app=other)
        async with httpx.AsyncClient(transport=transport, base_url="http://sdq.test") as second:
            theirs = await scrape(second)
    ours = await scrape(client)
    for name in ("sdq_queue_jobs", "sdq_jobs_added_total"):
        assert {k: v for k, v in ours.items() if k[0] == name} == {
            k: v for k, v in theirs.items() if k[0] == name
        }


async def test_metrics_with_redis_down_still_answer_and_say_so(settings: ApiSettings) -> None:
    down = {"redis_url": SecretStr(f"redis://127.0.0.1:{free_port()}/0"), "redis_timeout_s": 0.5}
    app = create_app(settings.model_copy(update=down))
    async with app.router.lifespan_context(app):
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://sdq.test") as client:
            await client.get("/getJobStatus", params={"token": "0" * 32})
            samples = await scrape(client)
    assert value(samples, "sdq_redis_up") == 0
    assert not any(name.startswith("sdq_queue") for name, _ in samples)
    name = "sdq_http_request_duration_seconds_count"
    assert value(samples, name, endpoint="/getJobStatus", code="500") == 1


async def test_metrics_can_be_turned_off(redis: Redis, settings: ApiSettings) -> None:
    app = create_app(settings.model_copy(update={"metrics": False}), redis=redis)
    async with app.router.lifespan_context(app):
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://sdq.test") as client:
            assert (await client.get("/metrics")).status_code == 404


WORKER = textwrap.dedent(
    """
    import sys
    from api.metrics import HttpMetrics
    metrics = HttpMetrics()
    for _ in range(int(sys.argv[1])):
        metrics.observe("/getJobStatus", 200, 0.002)
    if len(sys.argv) > 2:
        sys.stdout.buffer.write(metrics.exposition())
    """
)


def test_metrics_multiprocess_mode_sums_every_worker(tmp_path: Path) -> None:
    """Three processes (as uvicorn workers would be) share PROMETHEUS_MULTIPROC_DIR;
    the last one's exposition counts the requests of all three."""
    env = {**os.environ, "PROMETHEUS_MULTIPROC_DIR": str(tmp_path)}
    for count in ("3", "4"):
        subprocess.run([sys.executable, "-c", WORKER, count], env=env, check=True)
    out = subprocess.run(
        [sys.executable, "-c", WORKER, "5", "render"], env=env, check=True, capture_output=True
    ).stdout.decode()
    samples = parse(out)
    name = "sdq_http_request_duration_seconds_count"
    assert value(samples, name, endpoint="/getJobStatus", code="200") == 12
