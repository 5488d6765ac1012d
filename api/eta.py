"""How long until a job is complete, from measured render times and live workers.

The estimate is deliberately simple, and says "unknown" (None) rather than guess:

- a pending job needs its remaining images x the per-image time of its resolution;
- a new job first waits for the work ahead of it (images still to render, per
  resolution, spread over the live workers), then needs all of its own images;
- a resolution nobody has measured yet is scaled by pixel count from the ones
  that were; with no measurement at all, or no live worker, there is no ETA.

The work ahead is never read job by job: the place is exact, and the images of
the jobs ahead are estimated from running sums per state and resolution (O(1),
broker/details.py's WorkAhead: exact when the jobs ahead are like the mean job,
off by at most the ratio of the largest to the smallest job cost otherwise).
"""

from __future__ import annotations

from collections.abc import Mapping

from broker.details import JobDetails, RenderTime
from broker.states import JobState


def pixels(resolution: str) -> int:
    """'768x576' -> 442368; 0 for anything else."""
    width, _, height = resolution.partition("x")
    return int(width) * int(height) if width.isdigit() and height.isdigit() else 0


def per_image_ms(resolution: str, times: Mapping[str, RenderTime]) -> float | None:
    """Measured ms per image; else scaled by pixels from the measured resolutions."""
    if resolution in times:
        return times[resolution].per_image_ms
    measured = [(pixels(res), time.per_image_ms) for res, time in times.items() if pixels(res)]
    if not measured or not pixels(resolution):
        return None
    ms_per_pixel = sum(ms for _, ms in measured) / sum(px for px, _ in measured)
    return ms_per_pixel * pixels(resolution)


def live_workers(details: JobDetails) -> int:
    """Workers that reported lately; a worker busy with a long job may not have, but
    its lease shows it is alive, and each holds one lease."""
    return max(details.workers_seen, details.busy_workers)


def eta_seconds(details: JobDetails) -> float | None:
    """Seconds until complete (one decimal), or None when it cannot be estimated."""
    if details.state.is_terminal:
        return None
    own = per_image_ms(details.resolution, details.render_times)
    if own is None:
        return None
    own_ms = max(0, details.number - details.progress) * own
    if details.state is JobState.PENDING:
        return round(own_ms / 1000, 1)
    wait = wait_seconds(details)
    if wait is None:
        return None
    return round(wait + own_ms / 1000, 1)


def wait_seconds(details: JobDetails) -> float | None:
    """Seconds until a new job starts: the work ahead spread over the live workers;
    None without a live worker or a measurement of a resolution ahead."""
    workers = live_workers(details)
    ahead_ms = _work_ahead_ms(details)
    if workers == 0 or ahead_ms is None:
        return None
    return ahead_ms / workers / 1000


def _work_ahead_ms(details: JobDetails) -> float | None:
    images = details.ahead.images()
    if images is None:
        return None
    total = 0.0
    for resolution, count in images.items():
        ms = per_image_ms(resolution, details.render_times)
        if ms is None:
            return None
        total += count * ms
    return total
