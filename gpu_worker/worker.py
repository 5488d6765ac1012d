"""The worker loop. It reads like a job's life: claim -> render -> store -> complete.

Where jobs come from (JobSource), how images are made (Renderer) and where they
go (ImageStore) are plugged in; this module owns only the order of things and
what each failure means:

- Redis or the API unreachable: pause with capped, jittered backoff, try again.
- Render error, or an image that cannot be stored after `store_attempts` tries:
  release the job (its attempt counts; at the limit the broker marks it failed).
- Lease lost (a heartbeat or the completion was refused): drop the job, never
  complete it: another worker owns it now.
- stop() (first SIGTERM): finish the current job, take no other, return 0.
  stop() again (second SIGTERM): release the current job at once, return 0.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Awaitable, Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor

from broker.job import Claim
from gpu_worker.backoff import Backoff
from gpu_worker.errors import LeaseLost, RenderFailed, SourceRefused, SourceUnavailable, StoreFailed
from gpu_worker.heartbeat import Heartbeat
from gpu_worker.renderers.base import Renderer, RenderRequest
from gpu_worker.seeds import seed_for
from gpu_worker.settings import WorkerSettings
from gpu_worker.sources.base import JobSource
from gpu_worker.storage.base import ImageStore
from gpu_worker.telemetry import RenderTimes

log = logging.getLogger(__name__)

RELEASE_TRIES = 3


class Worker:
    def __init__(
        self,
        source: JobSource,
        renderer: Renderer,
        store: ImageStore,
        settings: WorkerSettings,
    ) -> None:
        self.source = source
        self.renderer = renderer
        self.store = store
        self.settings = settings
        self.heartbeat_s = settings.worker_lease_ms / 3000
        self.times = RenderTimes()
        self.renders_in_flight = 0  # batches running in the render thread
        self.completed = 0
        self._executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="render")
        self._stopping = asyncio.Event()
        self._aborted = False
        self._job: asyncio.Task[None] | None = None
        self._reported_at = float("-inf")

    # -- control ---------------------------------------------------------------

    def stop(self) -> None:
        """First call: finish the current job and return. Second call: abort()."""
        if self._stopping.is_set():
            self.abort()
            return
        log.info("stopping: finishing the current job, taking no other")
        self._stopping.set()

    def abort(self) -> None:
        """Release the current job now and return."""
        log.info("stopping now: releasing the current job")
        self._stopping.set()
        self._aborted = True
        if self._job is not None:
            self._job.cancel()

    # -- the loop --------------------------------------------------------------

    async def run(self) -> int:
        """Works until stopped. 0 after a stop, 2 if the source refuses this worker."""
        backoff = Backoff(self.settings.retry_base_s, self.settings.retry_cap_s)
        try:
            while not self._stopping.is_set():
                try:
                    claim = await self.claim()
                except SourceUnavailable as exc:
                    delay = backoff.next_delay()
                    log.warning(
                        "%s unavailable (%s); retrying in %.1f s", self.source.name, exc, delay
                    )
                    await self._until_stopped(asyncio.sleep(delay))
                    continue
                backoff.reset()
                if claim is not None:
                    await self._process_until_aborted(claim)
        except SourceRefused as exc:
            log.error("%s: %s", self.source.name, exc)
            return 2
        finally:
            await self.report(leaving=True)
            self._executor.shutdown(wait=False, cancel_futures=True)
        return 0

    async def claim(self) -> Claim | None:
        """The next job; while there is none, waits for work (or a stop) and returns None."""
        claim = await self.source.claim()
        if claim is None:
            await self._report_if_due()
            await self._until_stopped(self.source.wait_for_work())
        return claim

    async def process(self, claim: Claim) -> None:
        job = claim.job
        log.info(
            "job %s: claimed (fence %s), %d image(s) %dx%d",
            job.token[:8], claim.fence, job.number, job.width, job.height,
        )  # fmt: skip
        try:
            async with Heartbeat(self.source, claim, self.heartbeat_s) as beat:
                await self.render_and_store(claim, beat)
                beat.check()
            await self.complete(claim)
        except LeaseLost as exc:
            log.warning("job %s: dropped, another claim owns it (%s)", job.token[:8], exc)
        except (RenderFailed, StoreFailed) as exc:
            log.error("job %s: %s", job.token[:8], exc)
            await self.release(claim, str(exc))
        except asyncio.CancelledError:
            await self.release(claim, "worker stopped")
            raise
        await self._report_if_due()

    async def render_and_store(self, claim: Claim, beat: Heartbeat) -> None:
        """Renders in batches; each image is stored as soon as its batch is done."""
        job = claim.job
        done = 0
        for indexes in batches(job.number, self.settings.batch_size):
            beat.check()
            request = RenderRequest(
                token=job.token,
                prompt=job.prompt,
                width=job.width,
                height=job.height,
                indexes=indexes,
                seeds=[seed_for(job.token, index) for index in indexes],
            )
            ms = await self._in_render_thread(request)
            self.times.add(job.width, job.height, len(indexes), ms)
            done += len(indexes)
            beat.progress(done)

    async def complete(self, claim: Claim) -> None:
        """Marks the job complete; keeps trying while the source is unreachable."""
        backoff = Backoff(self.settings.retry_base_s, self.settings.retry_cap_s)
        while True:
            try:
                await self.source.complete(claim)
            except SourceUnavailable as exc:
                delay = backoff.next_delay()
                log.warning("job %s: not completed yet (%s)", claim.job.token[:8], exc)
                await asyncio.sleep(delay)
                continue
            self.completed += 1
            log.info("job %s: complete", claim.job.token[:8])
            return

    async def release(self, claim: Claim, reason: str) -> None:
        """Gives the job back; if that fails too, its lease runs out and the sweep does it."""
        backoff = Backoff(self.settings.retry_base_s, self.settings.retry_cap_s)
        for _ in range(RELEASE_TRIES):
            try:
                state = await self.source.release(claim, reason)
            except SourceUnavailable as exc:
                log.warning("job %s: release failed (%s)", claim.job.token[:8], exc)
                await asyncio.sleep(backoff.next_delay())
                continue
            except LeaseLost:
                return
            if state is not None:
                log.info("job %s: released, now %s", claim.job.token[:8], state.value)
            return

    async def report(self, leaving: bool = False) -> None:
        """Sends the buffered render times and this worker's liveness; best effort."""
        samples = self.times.drain()
        self._reported_at = time.monotonic()
        try:
            await self.source.report(samples, leaving)
        except (SourceUnavailable, LeaseLost) as exc:
            log.debug("report not sent: %s", exc)
            for sample in samples:  # kept for the next report
                self.times.add(sample.width, sample.height, sample.images, sample.ms)

    # -- helpers ---------------------------------------------------------------

    async def _report_if_due(self) -> None:
        if time.monotonic() - self._reported_at >= self.settings.report_interval_s:
            await self.report()

    async def _process_until_aborted(self, claim: Claim) -> None:
        self._job = asyncio.create_task(self.process(claim))
        try:
            await self._job
        except asyncio.CancelledError:
            if not self._aborted:
                raise
        finally:
            self._job = None

    async def _until_stopped(self, waiting: Awaitable[None]) -> None:
        """Awaits `waiting`, cut short by stop(). Its errors propagate."""
        work = asyncio.ensure_future(waiting)
        stop = asyncio.ensure_future(self._stopping.wait())
        await asyncio.wait({work, stop}, return_when=asyncio.FIRST_COMPLETED)
        for task in (work, stop):
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task

    async def _in_render_thread(self, request: RenderRequest) -> int:
        loop = asyncio.get_running_loop()
        return await loop.run_in_executor(self._executor, self._render_and_store, request)

    def _render_and_store(self, request: RenderRequest) -> int:
        """In the render thread: renders one batch, stores its images, returns render ms."""
        self.renders_in_flight += 1
        try:
            started = time.perf_counter()
            try:
                images = self.renderer.render(request)
            except Exception as exc:
                raise RenderFailed(f"render failed: {type(exc).__name__}: {exc}") from exc
            ms = round((time.perf_counter() - started) * 1000)
            if len(images) != len(request.indexes):
                raise RenderFailed(
                    f"renderer returned {len(images)} images for {len(request.indexes)}"
                )
            for index, png in zip(request.indexes, images, strict=True):
                self._store_one(request.token, index, png)
            return ms
        finally:
            self.renders_in_flight -= 1

    def _store_one(self, token: str, index: int, png: bytes) -> None:
        backoff = Backoff(self.settings.retry_base_s, self.settings.retry_cap_s)
        for attempt in range(1, self.settings.store_attempts + 1):
            try:
                self.store.put(token, index, png)
                return
            except Exception as exc:
                if attempt == self.settings.store_attempts:
                    raise StoreFailed(
                        f"storing image {index} failed {attempt} times: {type(exc).__name__}: {exc}"
                    ) from exc
                log.warning("job %s: storing image %d failed (%s), retrying", token[:8], index, exc)
                time.sleep(backoff.next_delay())


def batches(number: int, size: int) -> Iterator[Sequence[int]]:
    """Image indexes 0..number-1 in groups of at most `size`."""
    for start in range(0, number, size):
        yield list(range(start, min(number, start + size)))
