"""The ETA arithmetic (api/v2/eta.py), on broker JobDetails values."""

from __future__ import annotations

from dataclasses import replace

from api.v2.eta import eta_seconds, live_workers, per_image_ms
from broker.details import JobDetails, RenderTime
from broker.states import JobState

MEASURED = {"576x576": RenderTime(images=10, total_ms=20_000, recent_ms=1_000)}

JOB = JobDetails(
    token="ab" * 16,
    state=JobState.NEW,
    now_ms=10_000,
    created_ms=9_000,
    attempts=0,
    progress=0,
    number=2,
    width=576,
    height=576,
    prompt="an apple",
    started_ms=None,
    finished_ms=None,
    cancel_requested_ms=None,
    last_error=None,
    position=0,
    workers_seen=1,
    busy_workers=0,
    ahead_read=0,
    ahead_images={},
    render_times=MEASURED,
)


def test_eta_prefers_the_recent_per_image_time_over_the_lifetime_mean() -> None:
    assert per_image_ms("576x576", MEASURED) == 1_000
    assert per_image_ms("576x576", {"576x576": RenderTime(10, 20_000, None)}) == 2_000


def test_eta_scales_an_unmeasured_resolution_by_its_pixels() -> None:
    assert per_image_ms("1024x576", MEASURED) == 1_000 * (1024 * 576) / (576 * 576)
    assert per_image_ms("1024x576", {}) is None


def test_eta_of_a_job_at_the_head_is_its_own_images() -> None:
    assert eta_seconds(JOB) == 2.0


def test_eta_extrapolates_the_jobs_ahead_it_did_not_read() -> None:
    job = replace(JOB, position=30, ahead_read=10, ahead_images={"576x576": 10})
    assert eta_seconds(job) == 30 * 1.0 + 2.0


def test_eta_is_unknown_without_a_live_worker_or_a_measurement() -> None:
    assert eta_seconds(replace(JOB, workers_seen=0)) is None
    assert eta_seconds(replace(JOB, render_times={})) is None


def test_eta_of_a_pending_job_does_not_wait_for_workers() -> None:
    job = replace(JOB, state=JobState.PENDING, progress=1, workers_seen=0, busy_workers=1)
    assert eta_seconds(job) == 1.0
    assert live_workers(job) == 1


def test_eta_of_a_finished_job_is_none() -> None:
    for state in (JobState.COMPLETE, JobState.FAILED, JobState.CANCELLED):
        assert eta_seconds(replace(JOB, state=state)) is None
