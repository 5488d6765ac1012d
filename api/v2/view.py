"""A job as the v2 API shows it: broker details + ETA + image URLs + a notice."""

from __future__ import annotations

from dataclasses import dataclass

from api.eta import eta_seconds, live_workers
from api.services import Services
from api.settings import ApiSettings
from api.v2.images import ImageUrls
from api.v2.models import JobLinks, JobView, Progress, Workers
from api.v2.watch import JobWatches
from broker.details import JobDetails
from broker.states import JobState

NO_WORKER = "No worker is running: the job waits until one starts."
NO_ESTIMATE = "No render time has been measured yet: the ETA shows after the first job."
NO_IMAGE_URLS = "The images are stored, but this API is not configured to name their URLs."
CANCELLED = "Cancelled by its owner."
FAILED = "Rendering failed on every attempt; submitting the job again may work."
PAUSED = "The queue is paused by its operator: the job keeps its place and starts once it resumes."


# Why a job failed, for the public: a worker's own reason (an exception's text, a
# path, a driver message) stays in the logs and the job hash, for operators.
WORKER_LOST = "the worker rendering it stopped answering"
RENDER_FAILED = "rendering failed"


def public_error(last_error: str | None) -> str | None:
    if last_error is None:
        return None
    return WORKER_LOST if last_error.startswith("lease expired") else RENDER_FAILED


@dataclass(frozen=True, slots=True)
class V2Context:
    """What the v2 routes need beyond Services, built once per app."""

    settings: ApiSettings
    images: ImageUrls | None
    watches: JobWatches  # one poller per streamed job on this replica


def links(token: str) -> JobLinks:
    return JobLinks(status=f"/v2/jobs/{token}", events=f"/v2/jobs/{token}/events")


def preview_url(details: JobDetails) -> str | None:
    """The live preview's URL while the job renders; `v` changes with every new one."""
    if details.state is not JobState.PENDING or details.preview_ms is None:
        return None
    return f"/v2/jobs/{details.token}/preview?v={details.preview_ms}"


async def load_job(services: Services, context: V2Context, token: str) -> JobView:
    """Reads the job in one round trip and renders it; raises JobNotFound."""
    settings = context.settings
    details = await services.queue.job_details(token, round(settings.worker_live_s * 1000))
    return job_view(details, context.images)


def job_view(details: JobDetails, images: ImageUrls | None) -> JobView:
    workers = live_workers(details)
    eta = eta_seconds(details)
    urls = None
    if details.state is JobState.COMPLETE and images is not None:
        urls = images.urls(details.token, details.number)
    return JobView(
        token=details.token,
        state=details.state,
        prompt=details.prompt,
        resolution=details.resolution,
        age_s=max(0, details.now_ms - details.created_ms) / 1000,
        position=details.position,
        attempts=details.attempts,
        progress=Progress(
            done=_images_done(details), total=details.number, fraction=_fraction(details)
        ),
        eta_s=eta,
        workers=Workers(live=workers, available=workers > 0),
        cancel_requested=details.cancel_requested_ms is not None,
        queue_paused=details.paused_ms is not None,
        preview=preview_url(details),
        images=urls,
        error=public_error(details.last_error) if details.state is JobState.FAILED else None,
        notice=_notice(details, workers, eta, urls),
        links=links(details.token),
    )


def _images_done(details: JobDetails) -> int:
    """A complete job has every image stored, whether or not its worker's last
    progress report arrived before the completion."""
    if details.state is JobState.COMPLETE:
        return details.number
    return min(details.progress, details.number)


def _fraction(details: JobDetails) -> float:
    """Of the whole job, steps included: 1 when complete, 0 until it renders."""
    if details.state is JobState.COMPLETE:
        return 1.0
    if details.state is not JobState.PENDING or details.number <= 0:
        return 0.0
    done = _images_done(details) / details.number
    return round(min(1.0, max(done, details.fraction or 0.0)), 3)


def _notice(
    details: JobDetails, workers: int, eta: float | None, urls: list[str] | None
) -> str | None:
    state = details.state
    if state is JobState.NEW and details.paused_ms is not None:
        return PAUSED
    if state is JobState.NEW and workers == 0:
        return NO_WORKER
    if not state.is_terminal and eta is None:
        return NO_ESTIMATE
    if state is JobState.COMPLETE and urls is None:
        return NO_IMAGE_URLS
    if state is JobState.CANCELLED:
        return CANCELLED
    if state is JobState.FAILED:
        return FAILED
    return None
