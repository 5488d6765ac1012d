"""Keeps a claim's lease alive, and reports its job's progress and live preview.

One Heartbeat per claim, from the claim until the job is complete or given back
(a job claimed ahead of time has one too, so its lease holds while it waits).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time

from gpu_worker.errors import JobCancelled, LeaseLost, SourceUnavailable
from gpu_worker.lease import Lease
from gpu_worker.sources.base import JobSource

log = logging.getLogger(__name__)


class Heartbeat:
    """Renews the lease every `interval_s` (a third of the lease: two renewals may
    fail before it runs out), and as soon as progress changed, but never more than
    once per `min_gap_s` (1 s): while a batch renders progress changes with every
    denoising step, so a cancelled job learns it within a second (the renewal is
    refused) and stops at its next step. A job that ends within `min_gap_s` costs
    no renewal at all: until then the heartbeat is only a timer, not a task
    (measurable at hundreds of jobs per second, see bench/worker.py).

    Progress (images done, the fraction of the whole job) and previews are handed
    over by the render thread (`progress`, `wants_preview`, `offer_preview`: plain
    attribute writes) and go out with the next renewal.

    If the source says the claim is lost or the job cancelled, the lease is marked
    lost: every later check of it fails, so the job stops and publishes nothing."""

    def __init__(
        self,
        source: JobSource,
        lease: Lease,
        interval_s: float,
        min_gap_s: float = 1.0,
        preview_interval_s: float = 1.0,
    ) -> None:
        self.source = source
        self.lease = lease
        self.interval_s = interval_s
        self.min_gap_s = min(min_gap_s, interval_s)
        self.preview_interval_s = preview_interval_s
        self.renewals = 0
        self._images = 0
        self._fraction: float | None = None
        self._sent: tuple[int, float | None] = (0, None)
        self._preview: bytes | None = None
        self._preview_at = float("-inf")
        self._renewed_at = time.monotonic()
        self._timer: asyncio.TimerHandle | None = None
        self._task: asyncio.Task[None] | None = None

    # -- from the render thread ------------------------------------------------------

    def progress(self, images_done: int, fraction: float | None = None) -> None:
        self._images, self._fraction = images_done, fraction

    def wants_preview(self) -> bool:
        return (
            self.preview_interval_s > 0
            and self._preview is None
            and time.monotonic() - self._preview_at >= self.preview_interval_s
        )

    def offer_preview(self, jpeg: bytes | None) -> None:
        self._preview_at = time.monotonic()
        if jpeg:
            self._preview = jpeg

    # -- life ------------------------------------------------------------------------

    def start(self) -> None:
        self._timer = asyncio.get_running_loop().call_later(self.min_gap_s, self._start)

    async def stop(self) -> None:
        if self._timer is not None:
            self._timer.cancel()
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task

    async def __aenter__(self) -> Heartbeat:
        self.start()
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self.stop()

    def check(self) -> None:
        """Raises LeaseLost (or JobCancelled) once the claim no longer holds its job."""
        self.lease.check()

    async def flush(self) -> None:
        """Renews now with the latest progress (before publishing: a cancel or a lost
        claim is learnt here, and the publish step gets a whole lease of time), then
        checks the lease. An unreachable source is no error: the deadline decides."""
        await self._renew()
        self.lease.check()

    def _start(self) -> None:
        self._task = asyncio.create_task(self._beat(), name=f"heartbeat-{self.lease.token}")

    async def _beat(self) -> None:
        while self.lease.lost is None:
            changed = (self._images, self._fraction) != self._sent or self._preview is not None
            if changed or time.monotonic() - self._renewed_at >= self.interval_s - self.min_gap_s:
                await self._renew()
            await asyncio.sleep(self.min_gap_s)

    async def _renew(self) -> None:
        if self.lease.lost is not None:
            return
        sent = time.monotonic()
        images, fraction = self._images, self._fraction
        preview, self._preview = self._preview, None
        try:
            await self.source.renew(self.lease.claim, images, fraction, preview)
        except JobCancelled as exc:
            log.info("job %s: cancelled by its owner; stopping", self.lease.token[:8])
            self.lease.lose(exc)
        except LeaseLost as exc:
            log.warning("job %s: lease lost (%s)", self.lease.token[:8], exc)
            self.lease.lose(exc)
        except SourceUnavailable as exc:  # the next beat tries again
            log.warning("job %s: lease not renewed: %s", self.lease.token[:8], exc)
        else:
            self.renewals += 1
            self.lease.renewed(sent)
            self._sent, self._renewed_at = (images, fraction), sent
