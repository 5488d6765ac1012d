"""Keeps a claim alive while its job renders, and reports images done so far."""

from __future__ import annotations

import asyncio
import contextlib
import logging
from types import TracebackType

from broker.job import Claim
from gpu_worker.errors import LeaseLost, SourceUnavailable
from gpu_worker.sources.base import JobSource

log = logging.getLogger(__name__)


class Heartbeat:
    """Renews the lease every `interval_s` (a third of the lease: two renewals may
    fail before it runs out), and sooner when progress changed, but never more than
    once per `min_gap_s`: a job that takes less than that costs no renewal at all.

    If the source says the claim is lost, `lost` is set and the job must stop: the
    worker never completes it (the source would refuse anyway: fencing).

    Until `min_gap_s` has passed it is only a timer, not a task: a job that ends
    sooner costs no task created and cancelled (measurable at hundreds of jobs
    per second, see bench/worker.py)."""

    def __init__(
        self, source: JobSource, claim: Claim, interval_s: float, min_gap_s: float = 1.0
    ) -> None:
        self.source = source
        self.claim = claim
        self.interval_s = interval_s
        self.min_gap_s = min(min_gap_s, interval_s)
        self.lost: LeaseLost | None = None
        self._progress = 0
        self._changed = asyncio.Event()
        self._timer: asyncio.TimerHandle | None = None
        self._task: asyncio.Task[None] | None = None

    def progress(self, images_done: int) -> None:
        self._progress = images_done
        self._changed.set()

    def check(self) -> None:
        """Raises LeaseLost once the heartbeat has learnt the claim is gone."""
        if self.lost is not None:
            raise self.lost

    async def __aenter__(self) -> Heartbeat:
        self._timer = asyncio.get_running_loop().call_later(self.min_gap_s, self._start)
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        if self._timer is not None:
            self._timer.cancel()
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task

    def _start(self) -> None:
        self._task = asyncio.create_task(self._beat(), name=f"heartbeat-{self.claim.job.token}")

    async def _beat(self) -> None:
        """Starts `min_gap_s` after the claim; renews, then pauses `min_gap_s` again."""
        while True:
            # asyncio.timeout, not wait_for: 3.11's wait_for can swallow the cancel
            # that ends this task when the event fires at the same moment.
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(self.interval_s - self.min_gap_s):
                    await self._changed.wait()
            self._changed.clear()
            try:
                await self.source.renew(self.claim, self._progress)
            except LeaseLost as exc:
                log.warning("job %s: lease lost (%s)", self.claim.job.token[:8], exc)
                self.lost = exc
                return
            except SourceUnavailable as exc:  # the next beat tries again
                log.warning("job %s: lease not renewed: %s", self.claim.job.token[:8], exc)
            await asyncio.sleep(self.min_gap_s)
