"""The ETA arithmetic (api/v2/eta.py), on broker JobDetails values."""

from __future__ import annotations

from dataclasses import replace

from api.eta import eta_seconds, live_workers, per_image_ms, wait_seconds
from broker.details import NOTHING_AHEAD, JobDetails, RenderTime, WorkAhead
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
    ahead=NOTHING_AHEAD,
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


def test_eta_scales_each_state_s_sums_by_the_share_of_its_jobs_ahead() -> None:
    # 2 pending jobs (both ahead) of 3 and 5 images; 40 new jobs holding 80 images,
    # 10 of them ahead: 8 + 80 x 10/40 = 28 images ahead at 1 s
    ahead = WorkAhead(2, 40, 2, 10, {"576x576": 8}, {"576x576": 80}, counted=True)
    job = replace(JOB, position=12, busy_workers=2, ahead=ahead)

    assert ahead.images() == {"576x576": 28.0}
    assert eta_seconds(job) == 28 / 2 + 2.0
    assert wait_seconds(job) == 14.0


def test_eta_of_the_work_ahead_is_exact_when_the_jobs_ahead_are_like_the_mean() -> None:
    # new jobs of 2 and 4 images alternate: any even number of them ahead is exact
    ahead = WorkAhead(0, 10, 0, 4, {}, {"576x576": 30, "768x576": 0}, counted=True)

    assert ahead.images() == {"576x576": 12.0, "768x576": 0.0}


def test_eta_is_unknown_while_the_sums_are_to_be_counted_again() -> None:
    ahead = WorkAhead(0, 3, 0, 2, {}, {"576x576": 3}, counted=False)

    assert ahead.images() is None
    assert eta_seconds(replace(JOB, position=2, ahead=ahead)) is None


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
