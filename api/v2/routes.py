"""The v2 routes. Each parses, makes one broker call and renders; errors are api/v2/errors.py's."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Annotated, Any

from fastapi import APIRouter, Depends, Header, Request, Response

from api.errors import FieldError, Rejected
from api.idempotency import HEADER as IDEMPOTENCY_KEY
from api.idempotency import check_key
from api.legacy.query import go_trim
from api.legacy.rules import MAX_NUMBER, MIN_NUMBER, RESOLUTIONS, JobRequest
from api.legacy.rules import check_job_request as check_rules
from api.services import ServicesDep
from api.submit import submit
from api.v2.errors import V2Route
from api.v2.events import HEADERS, EventStreamResponse, JobStream, StreamPlace, fingerprint
from api.v2.models import (
    CaptchaConfig,
    ConfigView,
    ErrorResponse,
    JobCreate,
    JobCreated,
    JobView,
    NumberRange,
    QueueView,
    ResolutionOption,
    ResolutionTiming,
    Workers,
)
from api.v2.view import V2Context, links, load_job
from broker.errors import JobNotFound
from broker.states import JobState
from broker.tokens import is_token

HCAPTCHA_SCRIPT = "https://js.hcaptcha.com/1/api.js?render=explicit&onload=sdqCaptchaReady"
THROUGHPUT_SAMPLE_MS = 5_000
THROUGHPUT_WINDOW_MS = 5 * 60_000
DEFAULT_RESOLUTION, DEFAULT_NUMBER = "768x576", 4
# The original README's example prompts, one per resolution.
EXAMPLES = {
    "1024x576": ("wide landscape (16:9)", "The Dolomites, high detail, watercolor."),
    "768x576": ("landscape (4:3)", "A yellow mountain bike, children's book illustration."),
    "576x768": ("portrait (3:4)", "Portrait of Reinhold Messner, oil painting."),
    "576x576": ("square (1:1)", "An apple on a wooden table, magazine photo."),
}

_ERRORS: dict[int | str, dict[str, Any]] = {
    404: {"model": ErrorResponse, "description": "token not found (or expired)"},
    503: {"model": ErrorResponse, "description": "storage unavailable; try again"},
}

router = APIRouter(prefix="/v2", tags=["v2"], route_class=V2Route)
PREVIEW_HEADERS = {"Cache-Control": "no-store", "X-Content-Type-Options": "nosniff"}


def context(request: Request) -> V2Context:
    return request.app.state.v2  # type: ignore[no-any-return]


ContextDep = Annotated[V2Context, Depends(context)]


async def count_read(request: Request, services: ServicesDep) -> None:
    """Counts a v2 read against the client's SDQ_V2_READ_RATE (429 past it)."""
    await services.abuse.read(services.clients.key(services.clients.address(request.scope)))


Counted = Annotated[None, Depends(count_read)]


def _job_token(token: str) -> str:
    """Only a token-shaped string can name a job; anything else is never looked up."""
    if not is_token(token):
        raise JobNotFound(token)
    return token


@router.post(
    "/jobs",
    status_code=201,
    summary="Queue a job (the rules and captcha of /addJob)",
    responses={
        400: {
            "model": ErrorResponse,
            "description": "captcha failed, not a JSON object, or a malformed Idempotency-Key",
        },
        422: {
            "model": ErrorResponse,
            "description": "fields break the rules (all listed), or the Idempotency-Key "
            "was used for another request",
        },
        429: {"model": ErrorResponse, "description": "too many requests, open jobs or images"},
        503: {
            "model": ErrorResponse,
            "description": "storage unavailable, or the queue is full (SDQ_MAX_WAIT_S: "
            "Retry-After, and the estimated wait in the message)",
        },
    },
)
async def create_job(
    body: JobCreate,
    request: Request,
    response: Response,
    services: ServicesDep,
    idempotency_key: Annotated[
        str | None,
        Header(
            alias=IDEMPOTENCY_KEY,
            description="the same key from the same client within 24 h answers the first "
            "job instead of adding one (docs/v2-api.md)",
        ),
    ] = None,
) -> JobCreated:
    key = "" if idempotency_key is None else check_key(idempotency_key)
    job = check_rules(
        go_trim(body.prompt),
        go_trim(str(body.number)),
        go_trim(body.resolution),
        go_trim(body.captcha),
    )
    if not isinstance(job, JobRequest):
        raise Rejected(422, job)
    added = await submit(services, job, services.clients.address(request.scope), key)
    token = added.token
    response.headers["Location"] = links(token).status
    if added.replayed:
        response.headers["Idempotent-Replayed"] = "true"
    return JobCreated(token=token, state=JobState.NEW, links=links(token))


@router.get(
    "/jobs/{token}", summary="A job: state, position, progress, ETA, images", responses=_ERRORS
)
async def get_job(
    token: str, services: ServicesDep, context: ContextDep, counted: Counted
) -> JobView:
    return await load_job(services, context, _job_token(token))


@router.delete(
    "/jobs/{token}",
    summary="Cancel a job that is not finished (the token is the capability)",
    responses={**_ERRORS, 409: {"model": ErrorResponse, "description": "already finished"}},
)
async def cancel_job(
    token: str, services: ServicesDep, context: ContextDep, counted: Counted
) -> JobView:
    await services.queue.cancel(_job_token(token))
    return await load_job(services, context, token)


@router.get(
    "/jobs/{token}/preview",
    summary="The live preview of a rendering job: a small JPEG of the image being drawn",
    response_class=Response,
    responses={
        200: {"content": {"image/jpeg": {}}, "description": "the latest preview"},
        404: {"model": ErrorResponse, "description": "no such job, or no preview now"},
        429: {"model": ErrorResponse, "description": "too many reads (SDQ_V2_READ_RATE)"},
        503: _ERRORS[503],
    },
)
async def job_preview(token: str, services: ServicesDep, counted: Counted) -> Response:
    image = await services.queue.preview(_job_token(token))
    if image is None:
        raise Rejected(404, [FieldError("token", "no preview")])
    return Response(image, media_type="image/jpeg", headers=PREVIEW_HEADERS)


@router.get(
    "/jobs/{token}/events",
    summary="Server-Sent Events: the job (a JobView per `status` event) whenever it changes",
    response_class=EventStreamResponse,
    responses={
        200: {"model": JobView, "description": "`status` events until the job is finished"},
        204: {"description": "the job is finished and Last-Event-ID shows the client knows"},
        **_ERRORS,
    },
)
async def job_events(
    token: str,
    request: Request,
    services: ServicesDep,
    context: ContextDep,
    counted: Counted,
    last_event_id: Annotated[str | None, Header()] = None,
) -> Response:
    token = _job_token(token)
    first = await load_job(services, context, token)
    if first.state.is_terminal and last_event_id == fingerprint(first):
        return Response(status_code=204)
    client = services.clients.key(services.clients.address(request.scope))
    place = StreamPlace(services, client)
    await place.hold()  # TooManyStreams: 429 before the stream starts
    settings = context.settings

    async def body() -> AsyncIterator[str]:
        polls = context.watches.subscribe(token)  # here: only a stream that starts polls
        stream = JobStream(
            polls.next, first, last_event_id, settings.sse_keepalive_s, settings.sse_max_s
        )
        try:
            async for chunk in stream.events():
                await place.keep()
                yield chunk
        finally:
            polls.close()
            await place.release()

    return EventStreamResponse(body(), headers=HEADERS)


@router.get("/queue", summary="Queue depth, live workers, throughput, render times")
async def queue_overview(services: ServicesDep, context: ContextDep, counted: Counted) -> QueueView:
    live_ms = round(context.settings.worker_live_s * 1000)
    stats = await services.queue.figures(live_ms, THROUGHPUT_SAMPLE_MS, THROUGHPUT_WINDOW_MS)
    live = max(stats.workers_seen, stats.pending)
    window = None if stats.since_ms is None else (stats.now_ms - stats.since_ms) / 1000
    return QueueView(
        depth={"new": stats.new, "pending": stats.pending},
        paused=stats.paused_ms is not None,
        totals=stats.counters,
        workers=Workers(live=live, available=live > 0),
        jobs_per_minute=_round(stats.jobs_per_minute),
        rate_window_s=window,
        render_s={
            resolution: ResolutionTiming(
                images=time.images,
                per_image_s=round(time.per_image_ms / 1000, 3),
                mean_s=round(time.total_ms / time.images / 1000, 3),
            )
            for resolution, time in sorted(stats.render_times.items())
        },
    )


def _round(value: float | None) -> float | None:
    return None if value is None else round(value, 2)


@router.get("/config", summary="What a frontend needs: captcha site key, resolutions, limits")
async def config(context: ContextDep) -> ConfigView:
    settings = context.settings
    required = settings.hcaptcha_secret is not None
    return ConfigView(
        captcha=CaptchaConfig(
            required=required,
            sitekey=settings.hcaptcha_sitekey,
            script=HCAPTCHA_SCRIPT if required else None,
        ),
        resolutions=[
            ResolutionOption(value=value, label=f"{value} {label}", example=example)
            for value, (label, example) in EXAMPLES.items()
            if value in RESOLUTIONS
        ],
        default_resolution=DEFAULT_RESOLUTION,
        number=NumberRange(min=MIN_NUMBER, max=MAX_NUMBER, default=DEFAULT_NUMBER),
    )
