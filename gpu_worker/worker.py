"""The worker loop. It reads like a job's life: claim -> render -> store -> complete.

Where jobs come from (JobSource), how images are made (Renderer) and where they
go (ImageStore) are plugged in; this module owns the order of things, one job
ahead (gpu_worker/job.py has one job's steps), and what each failure means:

- Redis or the API unreachable: pause with capped, jittered backoff, try again.
- Render error, or an image that cannot be stored after `store_attempts` tries:
  release the job (its attempt counts; at the limit the broker marks it failed).
- Lease lost (a renewal or the completion was refused, or the lease ran out by
  this worker's clock) or the job cancelled: stop at the next step, publish
  nothing, never complete it.
- A denoising step longer than SDQ_STEP_TIMEOUT_S (a hung GPU): release every
  job held and return 3, so the process exits and its orchestrator restarts it.
- Anything unexpected (a bug, a malformed job): give the job back, log it, pause
  with backoff and go on; the loop never dies of it.
- stop() (first SIGTERM): finish the current job, release the one claimed ahead,
  take no other, return 0. stop() again (second SIGTERM): release every job now.

While the last batch of a job renders, the worker claims the next job (one ahead
at most, its lease kept by its own heartbeat), so the GPU goes from one job to
the next without waiting for the publication, the completion or the claim.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Awaitable

from broker.image_gc import can_collect, delete_folder
from broker.job import Claim
from gpu_worker.backoff import Backoff
from gpu_worker.errors import (
    JobCancelled,
    LeaseLost,
    RenderFailed,
    SourceRefused,
    SourceUnavailable,
    StoreFailed,
    WorkerHung,
)
from gpu_worker.job import JobRun, Workshop, batches
from gpu_worker.renderers.base import Renderer
from gpu_worker.settings import WorkerSettings
from gpu_worker.sources.base import JobSource
from gpu_worker.storage.base import ImageStore
from gpu_worker.storage.local import LocalStore

log = logging.getLogger(__name__)

__all__ = ["EXIT_HUNG", "Worker", "batches"]

RELEASE_TRIES = 3
EXIT_HUNG = 3  # the process exit code after the watchdog tripped
GC_BATCH = 100


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
        self.shop = Workshop(source, renderer, store, settings)
        self.times = self.shop.times
        self.completed = 0
        self.exit_code = 0
        self._stopping = asyncio.Event()
        self._aborted = False
        self._current: asyncio.Task[None] | None = None
        self._ahead: asyncio.Task[JobRun | None] | None = None
        self._finishing: set[asyncio.Task[None]] = set()
        self._reported_at = float("-inf")

    @property
    def renders_in_flight(self) -> int:
        return self.shop.renders_in_flight

    # -- control ---------------------------------------------------------------------

    def stop(self) -> None:
        """First call: finish the current job and return. Second call: abort()."""
        if self._stopping.is_set():
            self.abort()
            return
        log.info("stopping: finishing the current job, taking no other")
        self._stopping.set()
        self.shop.stopping = True

    def abort(self) -> None:
        """Release every job now and return."""
        log.info("stopping now: releasing the current job")
        self._stopping.set()
        self.shop.stopping = True
        self._aborted = True
        for task in [self._current, *self._finishing]:
            if task is not None:
                task.cancel()

    # -- the loop ----------------------------------------------------------------------

    async def run(self) -> int:
        """Works until stopped: 0 after a stop, 2 if the source refuses this worker,
        3 (EXIT_HUNG) after a step outlasted SDQ_STEP_TIMEOUT_S."""
        backoff = Backoff(self.settings.retry_base_s, self.settings.retry_cap_s)
        try:
            while not self._stopping.is_set():
                try:
                    job = await self.next_job()
                    backoff.reset()
                    if job is not None:
                        await self._process_until_aborted(job)
                except SourceUnavailable as exc:
                    delay = backoff.next_delay()
                    log.warning(
                        "%s unavailable (%s); retrying in %.1f s", self.source.name, exc, delay
                    )
                    await self._until_stopped(asyncio.sleep(delay))
                except WorkerHung as exc:
                    log.error("the GPU seems hung (%s): releasing every job, exiting", exc)
                    self.exit_code = EXIT_HUNG
                    self.abort()
                except (SourceRefused, asyncio.CancelledError):
                    raise
                except Exception:  # a bug or a malformed job: never the end of the loop
                    delay = backoff.next_delay()
                    log.exception("unexpected error; going on in %.1f s", delay)
                    await self._until_stopped(asyncio.sleep(delay))
            await self._wind_down()
        except SourceRefused as exc:
            log.error("%s: %s", self.source.name, exc)
            self.abort()
            await self._wind_down()
            return 2
        finally:
            await self.report(leaving=True)
            self.shop.shutdown()
        return self.exit_code

    async def next_job(self) -> JobRun | None:
        """The job claimed ahead, or the next one; while there is none, waits for work
        (or a stop) and returns None."""
        if self._ahead is not None:
            ahead, self._ahead = self._ahead, None
            job = await ahead
            if job is not None:
                return job  # the GPU goes straight on (housekeeping runs after completions)
        await self._housekeeping()
        sent = time.monotonic()
        claim = await self.source.claim()
        if claim is None:
            await self._until_stopped(self.source.wait_for_work())
            return None
        return self._start(claim, sent)

    def _start(self, claim: Claim, sent_at: float) -> JobRun:
        job = claim.job
        log.info(
            "job %s: claimed (fence %s), %d image(s) %dx%d",
            job.token[:8], claim.fence, job.number, job.width, job.height,
        )  # fmt: skip
        return JobRun(self.shop, claim, sent_at)

    def _claim_ahead(self, current: JobRun) -> None:
        """While a job's last batch renders: claim the next job (one at most). Not from
        a server without leases (a legacy one: no fence), which could not take it back."""
        if (
            self.settings.pipeline
            and self._ahead is None
            and not self._stopping.is_set()
            and self.source.renews
            and current.claim.fence is not None
        ):
            self._ahead = asyncio.create_task(self._claim_one(), name="claim-ahead")

    async def _claim_one(self) -> JobRun | None:
        sent = time.monotonic()
        try:
            claim = await self.source.claim()
        except (SourceUnavailable, SourceRefused) as exc:  # the main loop hears of it again
            log.debug("no job claimed ahead: %s", exc)
            return None
        if claim is None:
            return None
        job = self._start(claim, sent)
        job.prime()  # its first batch starts the moment the current one ends
        return job

    async def process(self, job: JobRun) -> None:
        """Renders the job; its publication and completion go on in the background
        (pipeline) while the next job renders, or are waited for (SDQ_PIPELINE=false)."""
        try:
            await job.render(lambda: self._claim_ahead(job))
        except LeaseLost as exc:
            await self._drop(job, exc)
            return
        except (RenderFailed, StoreFailed) as exc:
            log.error("job %s: %s", job.name, exc)
            await self.release(job, str(exc))
            return
        except BaseException as exc:  # stopped, hung, or a bug: the job goes back first
            await self.release(job, _reason(exc))
            raise
        task = asyncio.create_task(self._finish(job), name=f"finish-{job.name}")
        self._finishing.add(task)
        task.add_done_callback(self._finishing.discard)
        if not self.settings.pipeline:
            await task
        elif len(self._finishing) > 1:  # the GPU outruns the uploads: wait for the oldest
            await asyncio.wait(set(self._finishing) - {task}, return_when="FIRST_COMPLETED")

    async def _finish(self, job: JobRun) -> None:
        try:
            await job.finish()
        except LeaseLost as exc:
            await self._drop(job, exc)
        except StoreFailed as exc:
            log.error("job %s: %s", job.name, exc)
            await self.release(job, str(exc))
        except asyncio.CancelledError:
            await self.release(job, "worker stopped")
            raise
        except Exception as exc:
            log.exception("job %s: unexpected error while publishing", job.name)
            await self.release(job, _reason(exc))
        else:
            self.completed += 1
            log.info("job %s: complete", job.name)
            await self._housekeeping()

    async def _drop(self, job: JobRun, exc: LeaseLost) -> None:
        if isinstance(exc, JobCancelled):
            log.info("job %s: cancelled; dropped, nothing published", job.name)
        else:
            log.warning("job %s: dropped, another claim owns it (%s)", job.name, exc)
        await job.stop(exc)

    async def release(self, job: JobRun, reason: str) -> None:
        """Gives the job back; if that fails too, its lease runs out and the sweep does it.
        Its lease counts as lost first, so nothing of it is written after the release. A
        job claimed ahead and never started costs no attempt."""
        await job.stop(LeaseLost(f"released: {reason}"))
        backoff = Backoff(self.settings.retry_base_s, self.settings.retry_cap_s)
        for _ in range(RELEASE_TRIES):
            try:
                state = await self.source.release(job.claim, reason, counted=job.started)
            except SourceUnavailable as exc:
                log.warning("job %s: release failed (%s)", job.name, exc)
                await asyncio.sleep(backoff.next_delay())
                continue
            except (LeaseLost, SourceRefused):
                return
            if state is not None:
                log.info("job %s: released, now %s", job.name, state.value)
            return

    async def _wind_down(self) -> None:
        """After the loop: the job claimed ahead goes back; publications finish (after
        abort() they give their jobs back)."""
        if self._ahead is not None:
            ahead, self._ahead = self._ahead, None
            job = await ahead
            if job is not None:
                await self.release(job, "worker stopping")
        if self._finishing:
            await asyncio.wait(set(self._finishing))

    # -- reports and housekeeping ------------------------------------------------------

    async def report(self, leaving: bool = False) -> None:
        """Sends the buffered render times, this worker's figures and its liveness;
        best effort."""
        samples = self.times.drain()
        figures = self.times.figures()
        self._reported_at = time.monotonic()
        try:
            await self.source.report(samples, leaving, figures)
        except (SourceUnavailable, LeaseLost, SourceRefused) as exc:
            log.debug("report not sent: %s", exc)
            self.times.keep(samples)

    async def _housekeeping(self) -> None:
        """Every SDQ_REPORT_INTERVAL_S: the report, and (local storage) the deletion
        of the images whose jobs finished long enough ago (broker/image_gc.py)."""
        if time.monotonic() - self._reported_at < self.settings.report_interval_s:
            return
        await self.report()
        if isinstance(self.store, LocalStore) and can_collect(self.store.folder):
            try:
                tokens = await self.source.take_due_images(GC_BATCH)
            except (SourceUnavailable, LeaseLost) as exc:
                log.debug("no image deletion now: %s", exc)
                return
            folder = self.store.folder
            for token in tokens:
                await asyncio.to_thread(delete_folder, folder, token)

    async def _process_until_aborted(self, job: JobRun) -> None:
        self._current = asyncio.create_task(self.process(job))
        try:
            await self._current
        except asyncio.CancelledError:
            if not self._aborted:
                raise
        finally:
            self._current = None

    async def _until_stopped(self, waiting: Awaitable[None]) -> None:
        """Awaits `waiting`, cut short by stop(). Its errors propagate."""
        work = asyncio.ensure_future(waiting)
        stop = asyncio.ensure_future(self._stopping.wait())
        await asyncio.wait({work, stop}, return_when=asyncio.FIRST_COMPLETED)
        for task in (work, stop):
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task


def _reason(exc: BaseException) -> str:
    if isinstance(exc, asyncio.CancelledError):
        return "worker stopped"
    if isinstance(exc, WorkerHung):
        return f"worker hung: {exc}"
    return f"worker error: {type(exc).__name__}"
