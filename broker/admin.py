"""Queue control for operators (`sdq admin`): pause and resume, retry a failed job,
cancel a job or every open job of one client, and a status read.

Each action is one atomic script that also appends who did what, when, and with
what outcome to the queue's audit list ({p}:audit, the last 1,000, newest first),
so every operator and `sdq admin status` sees it; `who` is a name (user@host), never
a secret. The processes log nothing of it: sdq/admin.py logs each action as well.
"""

from __future__ import annotations

from dataclasses import dataclass

from broker.figures import LIVE_MS, QueueFigures, worker_figures
from broker.queue import Queue
from broker.renders import WorkerFigures
from broker.states import JobState

__all__ = ["AdminStatus", "AuditEntry", "QueueAdmin", "Talker", "WorkerView"]


@dataclass(frozen=True, slots=True)
class AuditEntry:
    at_ms: int
    action: str  # pause, resume, retry, cancel, cancel-client
    target: str  # a token, a client key, or ''
    by: str
    outcome: str

    @classmethod
    def parse(cls, line: str) -> AuditEntry:
        at, action, target, by, outcome = (line.split("\t", 4) + [""] * 5)[:5]
        return cls(int(at) if at.isdigit() else 0, action, target, by, outcome)


@dataclass(frozen=True, slots=True)
class Talker:
    """A client with open jobs: its key, the images of its open jobs, how many jobs."""

    client: str
    images: int
    jobs: int


@dataclass(frozen=True, slots=True)
class WorkerView:
    worker: str
    last_seen_ms: int
    figures: WorkerFigures | None  # its last report's own figures (record_renders.lua)
    job: str | None  # the token it renders now
    job_started_ms: int | None

    @property
    def busy_ratio(self) -> float | None:
        """Share of its last report interval its GPU spent rendering; None before it
        reported figures (the same figure /metrics exports, sdq_worker_gpu_busy_ratio)."""
        return None if self.figures is None else self.figures.busy_ratio


@dataclass(frozen=True, slots=True)
class AdminStatus:
    figures: QueueFigures
    paused_ms: int | None
    paused_by: str
    talkers: list[Talker]
    workers: list[WorkerView]
    actions: list[AuditEntry]


class QueueAdmin:
    """The operator's calls on one queue, each audited as done `by` someone."""

    def __init__(self, queue: Queue, by: str) -> None:
        self.queue = queue
        self.by = by

    async def pause(self) -> bool:
        """Workers take nothing until resumed (adds go on); True if it was paused."""
        (was,) = await self.queue.call("set_paused", ["pause", self.by])
        return bool(was == "paused")

    async def resume(self) -> bool:
        """Workers take jobs again (idle ones are woken); True if it was paused."""
        (was,) = await self.queue.call("set_paused", ["resume", self.by])
        return bool(was == "paused")

    async def retry(self, token: str) -> None:
        """A failed job back to new, at its old place; raises JobNotFound or
        InvalidTransition (not failed)."""
        await self.queue.call("retry_job", [token, self.by], token)

    async def cancel(self, token: str) -> JobState:
        """Cancels one open job as the v2 DELETE does; returns the state it had."""
        retention = self.queue.settings.retention_ms
        (previous,) = await self.queue.call("cancel_job", [token, retention, self.by], token)
        return JobState(previous)

    async def cancel_client(self, client: str) -> tuple[int, int]:
        """Cancels every open job of one client key; returns (cancelled, dropped), the
        latter tokens whose job hash was gone."""
        args: list[str | int] = [client, self.queue.settings.retention_ms, self.by]
        cancelled, dropped = await self.queue.call("cancel_client", args, client=client)
        return int(cancelled), int(dropped)

    async def status(self, top: int = 10, entries: int = 10, live_ms: int = LIVE_MS) -> AdminStatus:
        figures = await self.queue.figures(live_ms)
        reply = await self.queue.call("admin_status", [top, entries])
        _, paused, paused_by, talkers, workers, stats, jobs, actions = reply
        own = worker_figures(stats)
        current = {
            str(jobs[i + 1]): (str(jobs[i]), int(jobs[i + 2])) for i in range(0, len(jobs), 5)
        }
        views = []
        for i in range(0, len(workers), 2):
            worker, seen = str(workers[i]), int(float(workers[i + 1]))
            job = current.get(worker)
            views.append(
                WorkerView(
                    worker,
                    seen,
                    own.get(worker),
                    job[0] if job else None,
                    job[1] if job else None,
                )
            )
        return AdminStatus(
            figures=figures,
            paused_ms=int(paused) if int(paused) >= 0 else None,
            paused_by=str(paused_by),
            talkers=[
                Talker(str(talkers[i]), int(talkers[i + 1]), int(talkers[i + 2]))
                for i in range(0, len(talkers), 3)
            ],
            workers=views,
            actions=[AuditEntry.parse(str(line)) for line in actions],
        )
