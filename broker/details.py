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
    position: int | None  # jobs ahead (new or pending); None unless new or pending
    workers_seen: int  # workers that reported within the live window
    busy_workers: int  # pending jobs, each held by a live worker's lease
    ahead_read: int  # how many of the jobs ahead `ahead_images` covers
    ahead_images: dict[str, int]  # images still to render ahead, per "<W>x<H>"
    render_times: dict[str, RenderTime]
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
    seen, busy, ahead_read, ahead, render, fraction, preview_ms = reply[14:21]
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
        ahead_read=int(ahead_read),
        ahead_images={res: int(n) for res, n in pairs(ahead).items()},
        render_times=render_times(render),
        fraction=_fraction(str(fraction)),
        preview_ms=_optional_int(str(preview_ms)),
    )


def _fraction(value: str) -> float | None:
    try:
        number = float(value)
    except ValueError:
        return None
    return min(1.0, max(0.0, number)) if number == number else None  # NaN: none
