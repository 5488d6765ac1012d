"""The whole queue's figures, read by one script (queue_figures.lua) in one step.

/metrics, the v2 API's queue overview and `Queue.counts()` used to read depth
three ways (two pipelines and a script) that could drift apart; now they all
render one `QueueFigures`. Every figure is O(1) or O(log n) in the number of
jobs (the images per state are running sums kept by the scripts), so a scrape
stays cheap at any depth.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from broker.details import RenderTime, pairs, render_times
from broker.renders import WorkerFigures

LIVE_MS = 30_000  # a worker seen this recently counts as live, unless the caller says


@dataclass(frozen=True, slots=True)
class QueueFigures:
    now_ms: int  # the Redis clock
    waiting: int  # new jobs a claim can take (both waiting sets: FIFO and fair)
    reserved: int  # new jobs handed out by /getNextJob, withheld for a while
    pending: int  # claimed, under a lease
    oldest_waiting_ms: int | None  # created_ms of the next job a claim would take
    oldest_open_ms: int | None  # created_ms of the oldest new or pending job
    new_images: int  # images of the jobs in state new (reserved ones included)
    pending_images: int  # images of the pending jobs
    workers_seen: int  # workers that reported within the live window
    counters: dict[str, int]  # lifetime: added, complete, failed, cancelled, requeued...
    render_times: dict[str, RenderTime]
    durations: dict[str, int]  # claim-to-complete histogram fields (see _lib.lua)
    since_ms: int | None  # the oldest throughput sample in the window, if any
    since_complete: int | None
    paused_ms: int | None = None  # when the operator paused the queue; None: running
    # each live worker's own last-reported figures
    workers: dict[str, WorkerFigures] = field(default_factory=dict)

    @property
    def new(self) -> int:
        """Jobs in state new: waiting or reserved."""
        return self.waiting + self.reserved

    @property
    def jobs_per_minute(self) -> float | None:
        """Completions per minute since the oldest sample; None without history."""
        if self.since_ms is None or self.since_complete is None or self.now_ms <= self.since_ms:
            return None
        done = self.counters.get("complete", 0) - self.since_complete
        return max(0, done) * 60_000 / (self.now_ms - self.since_ms)


def _absent(value: Any) -> int | None:
    """-1 is the script's 'none'."""
    return int(value) if int(value) >= 0 else None


def queue_figures(reply: Sequence[Any]) -> QueueFigures:
    """Parses queue_figures.lua's reply (after its status code)."""
    now, waiting, reserved, pending, oldest_waiting, oldest_open = reply[:6]
    new_images, pending_images, seen, counters, render, durations = reply[6:12]
    since_ms, since_complete, paused, workers = reply[12:16]
    return QueueFigures(
        now_ms=int(now),
        waiting=int(waiting),
        reserved=int(reserved),
        pending=int(pending),
        oldest_waiting_ms=_absent(oldest_waiting),
        oldest_open_ms=_absent(oldest_open),
        new_images=int(new_images),
        pending_images=int(pending_images),
        workers_seen=int(seen),
        counters={name: int(value) for name, value in pairs(counters).items()},
        render_times=render_times(render),
        durations={name: int(value) for name, value in pairs(durations).items()},
        since_ms=_absent(since_ms),
        since_complete=_absent(since_complete),
        paused_ms=_absent(paused),
        workers=worker_figures(workers),
    )


def worker_figures(flat: Sequence[Any]) -> dict[str, WorkerFigures]:
    """A flat worker id, figures text list as {worker: WorkerFigures}, skipping text
    that is not what WorkerFigures.encode() writes."""
    return {
        name: figures
        for name, text in pairs(flat).items()
        if (figures := WorkerFigures.decode(text)) is not None
    }
