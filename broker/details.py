"""Read-only view of one job in depth, for the v2 API (the whole queue's figures are
broker/figures.py's).

It is parsed here from the reply of job_details.lua, so broker/queue.py keeps one
short call per script.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from broker.states import JobState


@dataclass(frozen=True, slots=True)
class RenderTime:
    """Measured render time of one resolution (summed over every worker's reports)."""

    images: int
    total_ms: int
    recent_ms: int | None  # per image, weighted to recent reports (record_renders.lua)

    @property
    def per_image_ms(self) -> float:
        """Recent per-image time when known, else the lifetime mean."""
        if self.recent_ms is not None:
            return float(self.recent_ms)
        return self.total_ms / self.images


@dataclass(frozen=True, slots=True)
class WorkAhead:
    """The work ahead of a job, estimated in O(1) from counts and running sums.

    Of the jobs served before it, `pending_ahead` are pending and `new_ahead` are new
    (the split is exact: ZRANK and ZCOUNT); which images they hold is not read job by
    job but estimated from the running sums per state and resolution ({p}:images):
    each state's images x the share of that state's jobs that is ahead (of a new
    job: the other new jobs). That is exact when the jobs ahead are like the mean job
    of their state (all pending jobs are
    ahead of a new job queued fairly, so that part is exact up to their progress), and
    never off by more than the ratio of the largest to the smallest job cost among
    them. Images already stored of pending jobs are not subtracted (the estimate is
    high by at most those, one job per worker)."""

    pending_jobs: int  # jobs pending now
    new_jobs: int  # jobs new now (waiting or handed out), this one included if new
    pending_ahead: int
    new_ahead: int
    pending_images: dict[str, int]  # images of all pending jobs, per "<W>x<H>"
    new_images: dict[str, int]  # images of all new jobs, per "<W>x<H>"
    counted: bool  # False while the sums are to be counted again (no estimate then)
    own: tuple[str, int] | None = None  # a new job's own resolution and images, in new_*

    @classmethod
    def from_reply(
        cls,
        counts: Sequence[Any],
        flat_images: Sequence[Any],
        own: tuple[str, int] | None = None,
    ) -> WorkAhead:
        """From (pending_jobs, new_jobs, pending_ahead, new_ahead) and the images hash;
        `own`: the job's resolution and images when it is new (in the sums itself)."""
        pending_jobs, new_jobs, pending_ahead, new_ahead = (int(n) for n in counts)
        fields = pairs(flat_images)
        by_state: dict[str, dict[str, int]] = {"new": {}, "pending": {}}
        for name, value in fields.items():
            state, _, resolution = name.partition(":")
            if resolution and state in by_state and int(value) > 0:
                by_state[state][resolution] = int(value)
        return cls(
            pending_jobs,
            new_jobs,
            pending_ahead,
            new_ahead,
            by_state["pending"],
            by_state["new"],
            "resolutions" in fields,
            own,
        )

    def images(self) -> dict[str, float] | None:
        """Images still to render ahead, per resolution; None when unknown."""
        if not self.counted:
            return None
        others, new_jobs = dict(self.new_images), self.new_jobs
        if self.own is not None:  # the mean of the other new jobs: the job is not ahead of itself
            resolution, images = self.own
            others[resolution] = max(0, others.get(resolution, 0) - images)
            new_jobs -= 1
        ahead: dict[str, float] = {}
        for sums, jobs, share in (
            (self.pending_images, self.pending_jobs, self.pending_ahead),
            (others, new_jobs, self.new_ahead),
        ):
            if jobs <= 0 or share <= 0:
                continue
            for resolution, images in sums.items():
                ahead[resolution] = ahead.get(resolution, 0.0) + images * min(1.0, share / jobs)
        return ahead


NOTHING_AHEAD = WorkAhead(0, 0, 0, 0, {}, {}, True)


@dataclass(frozen=True, slots=True)
class JobDetails:
    token: str
    state: JobState
    now_ms: int
    created_ms: int
    attempts: int
    progress: int
    number: int
    width: int
    height: int
    prompt: str
    started_ms: int | None
    finished_ms: int | None
    cancel_requested_ms: int | None
    last_error: str | None
    position: int | None  # jobs served before it (new or pending); None unless open
    workers_seen: int  # workers that reported within the live window
    busy_workers: int  # pending jobs, each held by a live worker's lease
    ahead: WorkAhead  # the work of the jobs ahead, estimated from running sums
    render_times: dict[str, RenderTime]
    paused_ms: int | None = None  # when the operator paused the queue; None: running
    fraction: float | None = None  # the current claim's step progress, 0..1 of the job
    preview_ms: int | None = None  # when the current claim last sent a preview (Redis clock)

    @property
    def resolution(self) -> str:
        return f"{self.width}x{self.height}"


def pairs(flat: Sequence[Any]) -> dict[str, str]:
    """A flat field, value list (HGETALL inside Lua) as a dict, in its order."""
    return {str(flat[i]): str(flat[i + 1]) for i in range(0, len(flat) - 1, 2)}


def _optional_int(value: str) -> int | None:
    return int(value) if value != "" else None


def render_times(flat: Sequence[Any]) -> dict[str, RenderTime]:
    """The render_ms hash as {resolution: RenderTime}, skipping resolutions with no images."""
    fields = pairs(flat)
    times = {}
    for name, value in fields.items():
        resolution, _, kind = name.rpartition(":")
        if kind != "images" or int(value) <= 0:
            continue
        recent = fields.get(f"{resolution}:ewma_ms")
        times[resolution] = RenderTime(
            images=int(value),
            total_ms=int(fields.get(f"{resolution}:ms", "0")),
            recent_ms=int(float(recent)) if recent is not None else None,
        )
    return times


def job_details(token: str, reply: Sequence[Any]) -> JobDetails:
    """Parses job_details.lua's reply (after its status code)."""
    (now, state, created, attempts, progress, number, width, height, prompt) = reply[:9]
    started, finished, cancel_requested, last_error, position = reply[9:14]
    seen, busy, new_jobs, pending_ahead, new_ahead, images, render, paused = reply[14:22]
    fraction, preview_ms = reply[22:24]
    return JobDetails(
        token=token,
        state=JobState(state),
        now_ms=int(now),
        created_ms=int(created),
        attempts=int(attempts),
        progress=int(progress),
        number=int(number),
        width=int(width),
        height=int(height),
        prompt=str(prompt),
        started_ms=_optional_int(str(started)),
        finished_ms=_optional_int(str(finished)),
        cancel_requested_ms=_optional_int(str(cancel_requested)),
        last_error=str(last_error) or None,
        position=int(position) if int(position) >= 0 else None,
        workers_seen=int(seen),
        busy_workers=int(busy),
        ahead=WorkAhead.from_reply(
            (busy, new_jobs, pending_ahead, new_ahead),
            images,
            (f"{width}x{height}", int(number)) if state == JobState.NEW.value else None,
        ),
        render_times=render_times(render),
        paused_ms=int(paused) if int(paused) >= 0 else None,
        fraction=_fraction(str(fraction)),
        preview_ms=_optional_int(str(preview_ms)),
    )


def wait_details(reply: Sequence[Any], number: int, width: int, height: int) -> JobDetails:
    """Parses wait_estimate.lua's reply as the details of a job not yet added: new, at
    the place the queue would give it, with nothing done (for the API's ETA)."""
    now, seen, pending_jobs, new_jobs, new_ahead, images, render = reply
    ahead = WorkAhead.from_reply((pending_jobs, new_jobs, pending_jobs, new_ahead), images)
    return JobDetails(
        token="",
        state=JobState.NEW,
        now_ms=int(now),
        created_ms=int(now),
        attempts=0,
        progress=0,
        number=number,
        width=width,
        height=height,
        prompt="",
        started_ms=None,
        finished_ms=None,
        cancel_requested_ms=None,
        last_error=None,
        position=int(pending_jobs) + int(new_ahead),
        workers_seen=int(seen),
        busy_workers=int(pending_jobs),
        ahead=ahead,
        render_times=render_times(render),
    )


def _fraction(value: str) -> float | None:
    try:
        number = float(value)
    except ValueError:
        return None
    return min(1.0, max(0.0, number)) if number == number else None  # NaN: none
