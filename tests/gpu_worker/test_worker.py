"""The worker loop, in process, on a real Redis engine: each failure behaviour."""

from __future__ import annotations

import asyncio
import threading
import time
from collections.abc import Awaitable, Callable

from redis.asyncio import Redis

from broker.queue import Queue
from broker.states import JobState
from gpu_worker.heartbeat import Heartbeat
from gpu_worker.lease import Lease
from gpu_worker.renderers.base import Renderer
from gpu_worker.sources.redis import RedisSource
from gpu_worker.storage.base import ImageStore
from gpu_worker.worker import Worker, batches
from sdq.embedded_redis import EmbeddedRedis
from tests.gpu_worker.conftest import WorkerSettingsFactory
from tests.gpu_worker.support import (
    CountingRenderer,
    FailingRenderer,
    MemoryStore,
    names,
)

T1, T2 = "a" * 32, "b" * 32


def direct_worker(
    settings_factory: WorkerSettingsFactory,
    renderer: Renderer,
    store: ImageStore,
    **overrides: object,
) -> Worker:
    settings = settings_factory(**overrides)
    return Worker(RedisSource(settings, "w-test"), renderer, store, settings)


async def until(condition: Callable[[], Awaitable[bool]], timeout_s: float = 15.0) -> None:
    """Polls a condition; the timeout only bounds a broken test, it asserts nothing."""
    deadline = time.monotonic() + timeout_s
    while not await condition():
        assert time.monotonic() < deadline, "condition not reached"
        await asyncio.sleep(0.02)


async def state_is(queue: Queue, token: str, state: JobState) -> bool:
    return (await queue.status(token)).state is state


async def finish(worker: Worker, task: asyncio.Task[int]) -> int:
    worker.stop()
    code = await asyncio.wait_for(task, 15)
    await worker.source.aclose()
    return code


def test_batches_cover_every_index_once_in_order() -> None:
    assert list(batches(5, 2)) == [[0, 1], [2, 3], [4]]
    assert list(batches(1, 4)) == [[0]]


async def test_worker_renders_stores_then_completes(
    real_queue: Queue, worker_settings: WorkerSettingsFactory
) -> None:
    await real_queue.add_job(T1, "an apple", 3, 576, 768)
    renderer, store = CountingRenderer(), MemoryStore()
    worker = direct_worker(worker_settings, renderer, store, batch_size=2)
    task = asyncio.create_task(worker.run())
    await until(lambda: state_is(real_queue, T1, JobState.COMPLETE))
    assert await finish(worker, task) == 0
    assert names(store.images) == {f"{T1}/{i:05d}.png": f"{T1}/{i:05d}" for i in range(3)}
    assert set(renderer.renders.values()) == {1}


async def test_worker_releases_a_job_whose_render_fails_until_it_is_failed(
    real_queue: Queue, worker_settings: WorkerSettingsFactory
) -> None:
    await real_queue.add_job(T1, "too big for the GPU", 1, 1024, 576)
    renderer = FailingRenderer()
    worker = direct_worker(worker_settings, renderer, MemoryStore(), max_attempts=3)
    task = asyncio.create_task(worker.run())
    await until(lambda: state_is(real_queue, T1, JobState.FAILED))
    assert await finish(worker, task) == 0
    status = await real_queue.status(T1)
    assert (status.state, status.attempts, renderer.calls) == (JobState.FAILED, 3, 3)
    last_error = await real_queue.redis.hget(real_queue.keys.job(T1), "last_error")
    assert last_error is not None and "CUDA out of memory" in last_error


async def test_worker_retries_storage_then_completes(
    real_queue: Queue, worker_settings: WorkerSettingsFactory
) -> None:
    await real_queue.add_job(T1, "flaky bucket", 1, 576, 576)
    store = MemoryStore(failures=2)
    worker = direct_worker(worker_settings, CountingRenderer(), store, store_attempts=3)
    task = asyncio.create_task(worker.run())
    await until(lambda: state_is(real_queue, T1, JobState.COMPLETE))
    await finish(worker, task)
    assert (store.puts, list(store.images)) == (3, [f"{T1}/00000.png"])
    assert (await real_queue.status(T1)).attempts == 0


async def test_worker_releases_a_job_it_cannot_store(
    real_queue: Queue, worker_settings: WorkerSettingsFactory
) -> None:
    await real_queue.add_job(T1, "bucket gone", 1, 576, 576)
    store = MemoryStore(failures=10**6)
    worker = direct_worker(
        worker_settings, CountingRenderer(), store, store_attempts=2, max_attempts=2
    )
    task = asyncio.create_task(worker.run())
    await until(lambda: state_is(real_queue, T1, JobState.FAILED))
    await finish(worker, task)
    assert store.puts == 4  # 2 tries per attempt, 2 attempts
    assert (await real_queue.status(T1)).attempts == 2


async def test_worker_never_completes_a_job_whose_lease_was_taken_over(
    real_queue: Queue, worker_settings: WorkerSettingsFactory
) -> None:
    await real_queue.add_job(T1, "slow zombie", 1, 576, 576)
    gate = threading.Event()
    zombie_renderer, store = CountingRenderer(gate), MemoryStore()
    zombie = direct_worker(worker_settings, zombie_renderer, store)
    task = asyncio.create_task(zombie.run())
    await asyncio.to_thread(zombie_renderer.started.wait, 10)
    # The zombie's lease runs out (as if it had hung) and the sweep requeues the job.
    await real_queue.redis.zadd(real_queue.keys.leases, {T1: 0})
    assert (await real_queue.requeue_expired()).counts == (1, 0, 0)
    second = await real_queue.claim("w-second", 60_000)
    assert second is not None and second.fence == 2
    gate.set()
    await finish(zombie, task)
    assert zombie.completed == 0
    status = await real_queue.status(T1)
    assert (status.state, status.attempts) == (JobState.PENDING, 1)
    await real_queue.complete(T1, second.fence)  # the new claim still can


async def test_worker_wakes_on_a_new_job_long_before_its_fallback_poll(
    real_queue: Queue, worker_settings: WorkerSettingsFactory
) -> None:
    renderer = CountingRenderer()
    worker = direct_worker(worker_settings, renderer, MemoryStore(), idle_poll_s=60)
    task = asyncio.create_task(worker.run())
    await asyncio.sleep(0.3)  # the worker found nothing and now blocks on the wake-up list
    await real_queue.add_job(T1, "wake up", 1, 576, 576)
    await until(lambda: state_is(real_queue, T1, JobState.COMPLETE), timeout_s=30)
    await finish(worker, task)
    assert renderer.renders[(T1, 0)] == 1


async def test_worker_stop_finishes_the_current_job_and_takes_no_other(
    real_queue: Queue, worker_settings: WorkerSettingsFactory
) -> None:
    await real_queue.add_job(T1, "first", 1, 576, 576)
    await real_queue.add_job(T2, "second", 1, 576, 576)
    gate = threading.Event()
    renderer = CountingRenderer(gate)
    worker = direct_worker(worker_settings, renderer, MemoryStore())
    task = asyncio.create_task(worker.run())
    await asyncio.to_thread(renderer.started.wait, 10)
    worker.stop()
    gate.set()
    assert await asyncio.wait_for(task, 15) == 0
    await worker.source.aclose()
    assert (await real_queue.status(T1)).state is JobState.COMPLETE
    assert (await real_queue.status(T2)).state is JobState.NEW


async def test_worker_second_stop_releases_the_current_job_at_once(
    real_queue: Queue, worker_settings: WorkerSettingsFactory
) -> None:
    await real_queue.add_job(T1, "interrupted", 1, 576, 576)
    gate = threading.Event()
    renderer = CountingRenderer(gate)
    worker = direct_worker(worker_settings, renderer, MemoryStore())
    task = asyncio.create_task(worker.run())
    await asyncio.to_thread(renderer.started.wait, 10)
    worker.stop()
    worker.stop()
    assert await asyncio.wait_for(task, 15) == 0
    gate.set()
    await worker.source.aclose()
    status = await real_queue.status(T1)
    assert (status.state, status.attempts, worker.completed) == (JobState.NEW, 1, 0)


async def test_worker_reports_progress_while_rendering(
    real_queue: Queue, worker_settings: WorkerSettingsFactory
) -> None:
    await real_queue.add_job(T1, "three slow images", 3, 576, 576)
    gates = [threading.Event() for _ in range(3)]

    class OneGatePerImage(CountingRenderer):
        def render(self, request, on_step=None):  # type: ignore[no-untyped-def]
            gates[request.indexes[0]].wait(timeout=30)
            return super().render(request)

    worker = direct_worker(worker_settings, OneGatePerImage(), MemoryStore(), batch_size=1)
    task = asyncio.create_task(worker.run())
    gates[0].set()
    gates[1].set()
    await until(lambda: _progress_is(real_queue, T1, 2))  # sent by the heartbeat
    gates[2].set()
    await until(lambda: state_is(real_queue, T1, JobState.COMPLETE))
    await finish(worker, task)


async def _progress_is(queue: Queue, token: str, images: int) -> bool:
    return (await queue.status(token)).progress == images


async def test_worker_records_render_time_by_resolution_and_liveness(
    real_queue: Queue, worker_settings: WorkerSettingsFactory
) -> None:
    for token in (T1, T2):
        await real_queue.add_job(token, "timed", 2, 768, 576)
    worker = direct_worker(worker_settings, CountingRenderer(), MemoryStore())
    task = asyncio.create_task(worker.run())
    await until(lambda: state_is(real_queue, T2, JobState.COMPLETE))
    keys = real_queue.keys
    await until(lambda: _is_live(real_queue, "w-test"))
    await finish(worker, task)
    render_ms = await real_queue.redis.hgetall(keys.render_ms)
    assert render_ms["768x576:images"] == "4"
    assert int(render_ms["768x576:ms"]) >= 0 and "768x576:ewma_ms" in render_ms
    assert await real_queue.redis.zscore(keys.workers, "w-test") is None  # left gracefully


async def _is_live(queue: Queue, worker: str) -> bool:
    return await queue.redis.zscore(queue.keys.workers, worker) is not None


async def test_worker_waits_out_a_redis_outage_then_works(
    worker_settings: WorkerSettingsFactory,
) -> None:
    engine = EmbeddedRedis()  # not started yet: Redis is down when the worker starts
    settings = worker_settings(redis_url=engine.url, redis_timeout_s=0.5)
    renderer = CountingRenderer()
    worker = Worker(RedisSource(settings, "w-outage"), renderer, MemoryStore(), settings)
    task = asyncio.create_task(worker.run())
    await asyncio.sleep(1.0)
    assert not task.done()  # no crash while Redis is unreachable
    engine.start()
    try:
        client = Redis.from_url(engine.url, decode_responses=True)
        queue = Queue(client, settings)
        await queue.add_job(T1, "after the outage", 1, 576, 576)
        await until(lambda: state_is(queue, T1, JobState.COMPLETE), timeout_s=30)
        await finish(worker, task)
        await client.aclose()
    finally:
        engine.stop()


async def test_heartbeat_ends_when_progress_arrives_just_as_the_job_ends(
    real_queue: Queue, worker_settings: WorkerSettingsFactory
) -> None:
    await real_queue.add_job(T1, "progress at the last moment", 1, 576, 576)
    source = RedisSource(worker_settings(), "w-beat")
    claim = await source.claim()
    assert claim is not None

    async def job_with_last_moment_progress() -> None:
        beat = Heartbeat(source, Lease(claim, 3.0), interval_s=3.0, min_gap_s=0.01)
        async with beat:
            await asyncio.sleep(0.02)
            beat.progress(1)

    for _ in range(20):
        job = asyncio.create_task(job_with_last_moment_progress())
        done, _ = await asyncio.wait({job}, timeout=10)
        assert job in done, "the heartbeat swallowed its cancel and never ended"
    await source.aclose()
