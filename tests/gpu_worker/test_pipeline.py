"""The worker at the physical limit, in process, on a real Redis engine: one job claimed
ahead (and given back on stop without costing an attempt), step progress and previews
sent with the heartbeat, a cancel that frees the renderer within one step and publishes
nothing, the step watchdog, and a loop that survives bugs."""

from __future__ import annotations

import asyncio
import itertools
import threading
import time
from pathlib import Path
from typing import Any

from broker.job import Claim
from broker.queue import Queue
from broker.states import JobState
from gpu_worker.errors import JobCancelled
from gpu_worker.renderers.base import RenderedImage, RenderRequest, StepHook, no_hook
from gpu_worker.sources.redis import RedisSource
from gpu_worker.storage.local import LocalStore
from gpu_worker.worker import EXIT_HUNG, Worker
from tests.gpu_worker.conftest import WorkerSettingsFactory
from tests.gpu_worker.support import CountingRenderer, MemoryStore, rendered
from tests.gpu_worker.test_worker import finish, state_is, until

T1, T2, T3 = "a" * 32, "b" * 32, "c" * 32


class WatchedSource(RedisSource):
    """The real direct source, noting each renewal (and when a cancel was learnt)."""

    def __init__(self, *args: Any, renderer: CountingRenderer | None = None) -> None:
        super().__init__(*args)
        self.renderer = renderer
        self.renewals: list[tuple[float, int, float | None, bytes | None]] = []
        self.steps_when_cancel_learnt: int | None = None

    async def renew(
        self,
        claim: Claim,
        progress: int,
        fraction: float | None = None,
        preview: bytes | None = None,
    ) -> None:
        try:
            await super().renew(claim, progress, fraction, preview)
        except JobCancelled:
            if self.renderer is not None:
                self.steps_when_cancel_learnt = self.renderer.steps_done
            raise
        self.renewals.append((time.monotonic(), progress, fraction, preview))


def worker_with(
    settings_factory: WorkerSettingsFactory, renderer: Any, store: Any, **overrides: Any
) -> tuple[Worker, WatchedSource]:
    settings = settings_factory(**overrides)
    source = WatchedSource(settings, "w-pipe", renderer=renderer)
    return Worker(source, renderer, store, settings), source


async def test_pipeline_claims_the_next_job_while_the_last_batch_renders(
    real_queue: Queue, worker_settings: WorkerSettingsFactory
) -> None:
    await real_queue.add_job(T1, "first", 2, 576, 576)
    await real_queue.add_job(T2, "second", 2, 576, 576)
    gate = threading.Event()
    renderer, store = CountingRenderer(gate), MemoryStore()
    worker, _ = worker_with(worker_settings, renderer, store, batch_size=2)
    task = asyncio.create_task(worker.run())
    await asyncio.to_thread(renderer.started.wait, 10)

    await until(lambda: state_is(real_queue, T2, JobState.PENDING))  # while T1 still renders
    assert renderer.order == [T1]
    gate.set()
    await until(lambda: state_is(real_queue, T2, JobState.COMPLETE))
    assert await finish(worker, task) == 0
    assert renderer.order == [T1, T2] and set(renderer.renders.values()) == {1}


async def test_pipeline_stop_gives_back_the_job_claimed_ahead_without_an_attempt(
    real_queue: Queue, worker_settings: WorkerSettingsFactory
) -> None:
    await real_queue.add_job(T1, "rendering", 1, 576, 576)
    await real_queue.add_job(T2, "claimed ahead", 1, 576, 576)
    gate = threading.Event()
    renderer, store = CountingRenderer(gate), MemoryStore()
    worker, _ = worker_with(worker_settings, renderer, store, max_attempts=1)
    task = asyncio.create_task(worker.run())
    await until(lambda: state_is(real_queue, T2, JobState.PENDING))

    worker.stop()
    gate.set()

    assert await asyncio.wait_for(task, 15) == 0
    await worker.source.aclose()
    assert (await real_queue.status(T1)).state is JobState.COMPLETE
    ahead = await real_queue.status(T2)
    assert (ahead.state, ahead.attempts) == (JobState.NEW, 0)  # never rendered: not counted
    # its first batch was queued behind T1's (primed) and stopped at its first step
    assert renderer.order in ([T1], [T1, T2]) and renderer.steps_done <= 2
    assert not [key for key in store.images if key.startswith(T2)]


async def test_pipeline_off_claims_nothing_ahead(
    real_queue: Queue, worker_settings: WorkerSettingsFactory
) -> None:
    await real_queue.add_job(T1, "first", 1, 576, 576)
    await real_queue.add_job(T2, "second", 1, 576, 576)
    gate = threading.Event()
    renderer = CountingRenderer(gate)
    worker, _ = worker_with(worker_settings, renderer, MemoryStore(), pipeline=False)
    task = asyncio.create_task(worker.run())
    await asyncio.to_thread(renderer.started.wait, 10)
    await asyncio.sleep(0.3)

    assert (await real_queue.status(T2)).state is JobState.NEW
    gate.set()
    await until(lambda: state_is(real_queue, T2, JobState.COMPLETE))
    await finish(worker, task)


async def test_progress_counts_steps_and_previews_go_out_with_the_heartbeat(
    real_queue: Queue, worker_settings: WorkerSettingsFactory
) -> None:
    await real_queue.add_job(T1, "one slow batch", 2, 576, 576)
    renderer = CountingRenderer(steps=50, step_s=0.05)  # a 2.5 s batch
    worker, source = worker_with(worker_settings, renderer, MemoryStore(), batch_size=2)
    task = asyncio.create_task(worker.run())
    await until(lambda: state_is(real_queue, T1, JobState.COMPLETE))
    await finish(worker, task)

    during = [(at, fraction) for at, done, fraction, _ in source.renewals if done == 0]
    assert len(during) >= 2, source.renewals  # at least once a second while steps move
    fractions = [fraction for _, fraction in during]
    assert all(fraction is not None and 0 < fraction < 1 for fraction in fractions)
    assert fractions == sorted(fractions)
    gaps = [b - a for (a, _), (b, _) in itertools.pairwise(during)]
    assert all(0.9 <= gap <= 1.6 for gap in gaps), gaps  # about once a second, never more
    previews = [preview for *_, preview in source.renewals if preview]
    assert previews and all(p.startswith(b"\xff\xd8") and len(p) < 32 * 1024 for p in previews)


async def test_cancel_during_a_batch_frees_the_renderer_within_one_step_and_publishes_nothing(
    real_queue: Queue, worker_settings: WorkerSettingsFactory
) -> None:
    await real_queue.add_job(T1, "cancel me", 4, 576, 576)
    await real_queue.add_job(T2, "next", 1, 576, 576)
    renderer, store = CountingRenderer(steps=200, step_s=0.03), MemoryStore()  # a 6 s batch
    worker, source = worker_with(worker_settings, renderer, store, batch_size=4)
    task = asyncio.create_task(worker.run())
    await asyncio.to_thread(renderer.started.wait, 10)
    await asyncio.sleep(0.5)

    await real_queue.cancel(T1)

    await until(lambda: state_is(real_queue, T2, JobState.COMPLETE))  # the renderer was free
    await finish(worker, task)
    learnt = source.steps_when_cancel_learnt
    assert learnt is not None
    steps_of_t1 = renderer.steps_done - 200  # T2's single batch made 200 steps
    assert steps_of_t1 - learnt <= 1  # stopped at the next step
    assert steps_of_t1 < 100  # far from the end of the batch
    assert not [key for key in store.images if key.startswith(T1)]  # nothing published
    assert not [key for key in store.staged if key[0] == T1]
    assert (await real_queue.status(T1)).state is JobState.CANCELLED


class HangingRenderer:
    """Makes two steps, then hangs in the third, as a GPU whose driver stopped answering."""

    name = "hanging"

    def __init__(self) -> None:
        self.release = threading.Event()

    def render(self, request: RenderRequest, on_step: StepHook = no_hook) -> list[RenderedImage]:
        on_step(1, 3)
        on_step(2, 3)
        self.release.wait(30)
        return [rendered(request.token, index) for index in request.indexes]


async def test_watchdog_releases_the_job_and_ends_the_worker_with_3_after_a_hung_step(
    real_queue: Queue, worker_settings: WorkerSettingsFactory
) -> None:
    await real_queue.add_job(T1, "hangs", 1, 576, 576)
    renderer = HangingRenderer()
    worker, _ = worker_with(worker_settings, renderer, MemoryStore(), step_timeout_s=0.5)
    started = time.monotonic()
    try:
        code = await asyncio.wait_for(worker.run(), 15)
    finally:
        renderer.release.set()
        await worker.source.aclose()

    assert code == EXIT_HUNG
    assert time.monotonic() - started < 5
    status = await real_queue.status(T1)
    assert (status.state, status.attempts) == (JobState.NEW, 1)
    last_error = await real_queue.redis.hget(real_queue.keys.job(T1), "last_error")
    assert last_error is not None and last_error.startswith("worker hung")


class BuggySource(WatchedSource):
    """Its first claim fails with an error nobody planned for (a bug)."""

    def __init__(self, *args: Any) -> None:
        super().__init__(*args)
        self.claims = 0

    async def claim(self) -> Claim | None:
        self.claims += 1
        if self.claims == 1:
            raise KeyError("a bug in a reply parser")
        return await super().claim()


class PickyRenderer(CountingRenderer):
    """Refuses sizes the model cannot draw, as diffusers does (a malformed job)."""

    def render(self, request: RenderRequest, on_step: StepHook = no_hook) -> list[RenderedImage]:
        if request.width % 8:
            raise ValueError("`height` and `width` have to be divisible by 8")
        return super().render(request, on_step)


async def test_worker_survives_a_bug_and_a_malformed_job_with_backoff(
    real_queue: Queue, worker_settings: WorkerSettingsFactory
) -> None:
    await real_queue.add_job(T1, "malformed", 1, 577, 576)
    await real_queue.add_job(T2, "fine", 1, 576, 576)
    settings = worker_settings(max_attempts=1)
    renderer = PickyRenderer()
    worker = Worker(BuggySource(settings, "w-bug"), renderer, MemoryStore(), settings)
    task = asyncio.create_task(worker.run())

    await until(lambda: state_is(real_queue, T2, JobState.COMPLETE))

    assert not task.done()
    assert await finish(worker, task) == 0
    assert (await real_queue.status(T1)).state is JobState.FAILED


async def test_worker_with_local_storage_deletes_the_images_of_finished_jobs(
    real_queue: Queue, worker_settings: WorkerSettingsFactory, tmp_path: Path
) -> None:
    folder = tmp_path / "images"
    leftover = folder / T3 / ".attempt-1" / "00000.png"
    leftover.parent.mkdir(parents=True)
    leftover.write_bytes(b"a cancelled attempt's")
    await real_queue.add_job(T3, "cancelled", 1, 576, 576)
    await real_queue.cancel(T3)  # due for deletion at once
    await real_queue.add_job(T1, "kept until its retention ends", 1, 576, 576)
    settings = worker_settings(images_dir=folder)
    worker = Worker(RedisSource(settings, "w-gc"), CountingRenderer(), LocalStore(folder), settings)
    task = asyncio.create_task(worker.run())

    await until(lambda: state_is(real_queue, T1, JobState.COMPLETE))
    await until(lambda: _gone(folder / T3))
    await finish(worker, task)

    assert (folder / T1 / "00000.png").is_file()
    assert not (folder / T1 / ".attempt-1").exists()  # its own staging is cleaned up


async def _gone(path: Path) -> bool:
    return not await asyncio.to_thread(path.exists)
