"""One claimed job: render its batches, stage its images, publish them, complete it.

The GPU is kept busy by overlapping what follows a render with the next one:

    render thread   | batch 1 | batch 2 | batch 3 | next job's batch 1 | ...
    encode/upload   |         | png+stage 1 | png+stage 2 | png 3, publish, complete |

Each batch's images are PNG-encoded and staged on the encode/upload pool while
the render thread draws the next batch; a job's publication and completion run
while the next job (claimed ahead, gpu_worker/worker.py) renders. With
SDQ_PIPELINE=false every step waits for the one before (the old loop, kept to
measure against: bench/busy.py).

Every write of the job's images first checks its lease (gpu_worker/lease.py),
every denoising step too: once a renewal is refused (superseded or cancelled)
or the lease has run out by this worker's clock, the job stops at the next step,
writes nothing more and is never completed.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any, TypeVar

from broker.job import Claim, JobSpec
from gpu_worker import encode
from gpu_worker.backoff import Backoff
from gpu_worker.errors import LeaseLost, RenderFailed, SourceUnavailable, StoreFailed, WorkerHung
from gpu_worker.heartbeat import Heartbeat
from gpu_worker.lease import Lease
from gpu_worker.renderers.base import (
    PreviewSource,
    RenderedImage,
    Renderer,
    RenderInterrupted,
    RenderRequest,
    StepHook,
)
from gpu_worker.seeds import seed_for
from gpu_worker.settings import WorkerSettings
from gpu_worker.sources.base import JobSource
from gpu_worker.storage.base import ImageStore, Staged
from gpu_worker.telemetry import RenderTimes

log = logging.getLogger(__name__)

T = TypeVar("T")


@dataclass
class Workshop:
    """What every job of one worker shares: its parts, threads, clocks and counters."""

    source: JobSource
    renderer: Renderer
    store: ImageStore
    settings: WorkerSettings
    times: RenderTimes = field(default_factory=RenderTimes)
    render_thread: ThreadPoolExecutor = field(
        default_factory=lambda: ThreadPoolExecutor(1, thread_name_prefix="render")
    )
    pool: ThreadPoolExecutor = field(init=False)
    renders_in_flight: int = 0  # batches running in the render thread
    stopping: bool = False  # the worker was asked to stop: jobs claimed ahead do not start
    last_step: float = 0.0  # monotonic time of the last denoising step (the watchdog's)

    def __post_init__(self) -> None:
        self.pool = ThreadPoolExecutor(self.settings.encode_threads, thread_name_prefix="encode")

    @property
    def lease_s(self) -> float:
        return self.settings.worker_lease_ms / 1000

    def shutdown(self) -> None:
        self.render_thread.shutdown(wait=False, cancel_futures=True)
        self.pool.shutdown(wait=False, cancel_futures=True)


class JobRun:
    """One claim of one job, from the claim to completion (or giving it back)."""

    def __init__(self, shop: Workshop, claim: Claim, sent_at: float) -> None:
        self.shop = shop
        self.claim = claim
        self.lease = Lease(claim, shop.lease_s, sent_at)
        self.claimed_at = sent_at
        self.beat = Heartbeat(
            shop.source,
            self.lease,
            interval_s=shop.lease_s / 3,
            preview_interval_s=shop.settings.preview_interval_s,
        )
        self.staged: list[asyncio.Future[Staged]] = []
        self.started = False  # the GPU worked on it: giving it back costs an attempt
        self.ahead = True  # claimed ahead; False once the loop takes it up (render)
        self.rendered = 0  # images whose render finished
        self._groups = list(batches(claim.job.number, shop.settings.batch_size))
        self._renders: dict[int, asyncio.Future[tuple[list[RenderedImage], int]]] = {}
        self.beat.start()

    @property
    def spec(self) -> JobSpec:
        return self.claim.job

    @property
    def name(self) -> str:
        return self.claim.job.token[:8]

    # -- rendering ---------------------------------------------------------------------

    async def render(self, before_last_batch: Callable[[], None]) -> None:
        """Renders every batch; each batch's images go to the pool to be encoded and
        staged while the next renders. The next batch is queued for the render thread
        before this one is awaited (pipeline), so the GPU never waits for the event
        loop. Raises LeaseLost (cancelled, superseded, ran out), RenderFailed,
        StoreFailed, WorkerHung."""
        self.ahead = False
        self.started = True
        spec, groups = self.spec, self._groups
        loop = asyncio.get_running_loop()
        for position, indexes in enumerate(groups):
            self.lease.check()
            if position == len(groups) - 1:
                before_last_batch()  # the worker claims its next job now
            future = self._renders.pop(position, None) or self._submit(position)
            if self.shop.settings.pipeline and position + 1 < len(groups):
                self._renders[position + 1] = self._submit(position + 1)
            images, ms = await self._await_render(future)
            self.shop.times.add(spec.width, spec.height, len(indexes), ms)
            self.rendered += len(indexes)
            self.beat.progress(self.rendered, self.rendered / spec.number)
            log.info(
                "job %s: images %d-%d of %d rendered in %.2f s",
                self.name, indexes[0], indexes[-1], spec.number, ms / 1000,
            )  # fmt: skip
            for index, image in zip(indexes, images, strict=True):
                self.staged.append(loop.run_in_executor(self.shop.pool, self._stage, index, image))
            await self._keep_up()

    def prime(self) -> None:
        """For a job claimed ahead: queues its first batch behind the batch the render
        thread is drawing, so it starts the moment that one ends."""
        if self._groups and 0 not in self._renders:
            self._renders[0] = self._submit(0)

    def _submit(self, position: int) -> asyncio.Future[tuple[list[RenderedImage], int]]:
        spec, indexes = self.spec, self._groups[position]
        request = RenderRequest(
            token=spec.token,
            prompt=spec.prompt,
            width=spec.width,
            height=spec.height,
            indexes=indexes,
            seeds=[seed_for(spec.token, index) for index in indexes],
        )
        before = sum(len(group) for group in self._groups[:position])
        return asyncio.get_running_loop().run_in_executor(
            self.shop.render_thread, self._render_sync, request, self._hook(request, before)
        )

    async def _await_render(
        self, future: asyncio.Future[tuple[list[RenderedImage], int]]
    ) -> tuple[list[RenderedImage], int]:
        shop = self.shop
        limit = shop.settings.step_timeout_s
        try:
            if not limit:
                return await future
            while True:
                done, _ = await asyncio.wait({future}, timeout=min(1.0, limit / 4))
                if done:
                    return future.result()
                if time.monotonic() - shop.last_step > limit:
                    raise WorkerHung(f"no denoising step for {limit:g} s (SDQ_STEP_TIMEOUT_S)")
        except RenderInterrupted:
            self.lease.check()  # raises the reason the hook stopped for
            raise LeaseLost("render interrupted") from None

    def _render_sync(
        self, request: RenderRequest, hook: StepHook
    ) -> tuple[list[RenderedImage], int]:
        """In the render thread: one batch."""
        shop = self.shop
        shop.renders_in_flight += 1
        shop.last_step = time.monotonic()
        started = time.perf_counter()
        try:
            images = shop.renderer.render(request, hook)
        except RenderInterrupted:
            raise
        except Exception as exc:
            raise RenderFailed(f"render failed: {type(exc).__name__}: {exc}") from exc
        finally:
            elapsed = time.perf_counter() - started
            shop.times.busy(elapsed)
            shop.renders_in_flight -= 1
        if len(images) != len(request.indexes):
            raise RenderFailed(f"renderer returned {len(images)} images for {len(request.indexes)}")
        return images, round(elapsed * 1000)

    def _hook(self, request: RenderRequest, before: int) -> StepHook:
        """Counts steps into the job's fraction, hands previews to the heartbeat,
        and stops the render at the first step after the lease is lost (or, for a
        job claimed ahead that the loop has not taken up, once the worker stops)."""
        size, number = len(request.indexes), max(1, self.spec.number)
        shop, lease, beat = self.shop, self.lease, self.beat

        def on_step(done: int, total: int, preview: PreviewSource | None = None) -> None:
            shop.last_step = time.monotonic()
            try:
                lease.check()
            except LeaseLost as exc:
                raise RenderInterrupted(str(exc)) from exc
            if self.ahead and shop.stopping:
                raise RenderInterrupted("the worker is stopping")
            self.started = True
            beat.progress(before, (before + size * done / max(1, total)) / number)
            if preview is not None and beat.wants_preview():
                beat.offer_preview(_preview(preview))

        return on_step

    async def _keep_up(self) -> None:
        """Pipeline off: waits for this batch's images. On: lets at most two batches'
        images wait for the pool (so memory stays bounded), and stops early when one
        could not be stored."""
        pending = [f for f in self.staged if not f.done()]
        if not self.shop.settings.pipeline:
            await asyncio.gather(*pending)
            return
        for future in self.staged:
            if future.done() and not future.cancelled() and future.exception() is not None:
                await future  # raises it
        limit = 2 * self.shop.settings.batch_size
        while len(pending) > limit:
            await pending.pop(0)

    # -- staging and publishing (in the pool) ------------------------------------------

    def _stage(self, index: int, rendered: RenderedImage) -> Staged:
        self.lease.check()  # a lost job is not even encoded
        text = {**rendered.text, "sdq:fence": str(self.lease.fence)}
        data = encode.png(rendered.image, text, self.shop.settings.png_compress_level)
        return self._retrying(
            f"storing image {index}",
            lambda: self.shop.store.stage(
                self.spec.token, self.lease.fence, index, data, self.lease.check
            ),
        )

    def _publish(self, staged: Staged) -> None:
        self._retrying(
            f"publishing image {staged.index}",
            lambda: self.shop.store.publish(staged, self.lease.check),
        )

    def _retrying(self, what: str, write: Callable[[], T]) -> T:
        settings = self.shop.settings
        backoff = Backoff(settings.retry_base_s, settings.retry_cap_s)
        for attempt in range(1, settings.store_attempts + 1):
            try:
                return write()
            except LeaseLost:
                raise
            except Exception as exc:
                if attempt == settings.store_attempts:
                    raise StoreFailed(
                        f"{what} failed {attempt} times: {type(exc).__name__}: {exc}"
                    ) from exc
                log.warning("job %s: %s failed (%s), retrying", self.name, what, exc)
                time.sleep(backoff.next_delay())
        raise AssertionError("unreachable")  # store_attempts >= 1

    # -- the end -----------------------------------------------------------------------

    async def finish(self) -> bool:
        """Publishes every image and completes the job; True when complete. Raises
        LeaseLost (cancelled, superseded, the lease ran out) and StoreFailed."""
        staged = [await future for future in self.staged]
        if time.monotonic() - self.claimed_at >= self.beat.min_gap_s:
            # learns a cancel now, and gets a whole lease to publish in; a job done
            # within a second costs no renewal (a cancel meanwhile is the race of a
            # cancel at the moment of completion: its images are deleted at once)
            await self.beat.flush()
        else:
            self.lease.check()
        loop = asyncio.get_running_loop()
        await asyncio.gather(
            *(loop.run_in_executor(self.shop.pool, self._publish, s) for s in staged)
        )
        await self.complete()
        await self.beat.stop()
        if any(s.path is not None for s in staged):  # staged in files: tidy them up
            await loop.run_in_executor(self.shop.pool, self.shop.store.clean, self.spec.token)
        return True

    async def complete(self) -> None:
        """Marks the job complete; retries while the source is unreachable, but not
        past the lease's end (another claim may own the job by then)."""
        settings = self.shop.settings
        backoff = Backoff(settings.retry_base_s, settings.retry_cap_s)
        while True:
            try:
                await self.shop.source.complete(self.claim)
                return
            except SourceUnavailable as exc:
                left = self.lease.deadline - time.monotonic()
                if left <= 0:
                    raise LeaseLost(f"not completed within the lease ({exc})") from exc
                log.warning("job %s: not completed yet (%s)", self.name, exc)
                await asyncio.sleep(min(backoff.next_delay(), left))

    async def stop(self, why: LeaseLost) -> None:
        """Stops everything of this claim: no write of it from now on."""
        self.lease.lose(why)
        pending: list[asyncio.Future[Any]] = [*self.staged, *self._renders.values()]
        for future in pending:
            if not future.cancel() and not future.cancelled():
                future.exception()  # retrieved: reported already, or an interrupted render
        self._renders.clear()
        await self.beat.stop()
        await asyncio.get_running_loop().run_in_executor(
            self.shop.pool, self.shop.store.discard, self.spec.token, self.lease.fence
        )


def _preview(source: PreviewSource) -> bytes | None:
    try:
        return encode.preview_jpeg(source())
    except Exception as exc:  # a preview is never worth a render
        log.debug("no preview: %s: %s", type(exc).__name__, exc)
        return None


def batches(number: int, size: int) -> Iterator[Sequence[int]]:
    """Image indexes 0..number-1 in groups of at most `size`."""
    for start in range(0, number, size):
        yield list(range(start, min(number, start + size)))
