"""The v2 API's JSON shapes, as the OpenAPI schema documents them."""

from __future__ import annotations

from typing import Annotated

from pydantic import AfterValidator, BaseModel, ConfigDict, Field, StrictInt, StrictStr

from api.legacy.query import is_utf8
from broker.states import JobState


def _utf8(value: str) -> str:
    if not is_utf8(value):
        raise ValueError("must be valid UTF-8 text (no lone surrogates)")
    return value


# A JSON string that is real text: "\ud800" is valid JSON but no UTF-8.
Utf8Str = Annotated[StrictStr, AfterValidator(_utf8)]


class FieldErrorModel(BaseModel):
    field: str | None = Field(description="The request field at fault; null when none is")
    message: str = Field(description="The legacy API's message for the same failure")


class ErrorResponse(BaseModel):
    """Every v2 error: all failed checks at once, in the legacy API's order."""

    errors: list[FieldErrorModel]


class JobCreate(BaseModel):
    """A new job. Same rules as /addJob: a missing field is reported, not refused."""

    model_config = ConfigDict(
        json_schema_extra={
            "examples": [
                {
                    "prompt": "The Dolomites, high detail, watercolor.",
                    "number": 4,
                    "resolution": "1024x576",
                    "captcha": "<the hCaptcha response token>",
                }
            ]
        }
    )

    prompt: Utf8Str = Field(default="", description="1..500 bytes; DE/IT letters transliterated")
    number: StrictInt | Utf8Str = Field(default="", description="images to render, 1..16")
    resolution: Utf8Str = Field(
        default="", description="one of 1024x576, 768x576, 576x768, 576x576"
    )
    captcha: Utf8Str = Field(default="", description="the hCaptcha widget's response")


class JobLinks(BaseModel):
    """Where to follow the job, relative to the API's base URL."""

    status: str = Field(description="GET: the job (JobView); DELETE: cancel it")
    events: str = Field(description="GET: Server-Sent Events with every change of the job")


class JobCreated(BaseModel):
    token: str = Field(description="32 hex characters; whoever holds it may read or cancel")
    state: JobState
    links: JobLinks


class Progress(BaseModel):
    done: int = Field(description="images rendered so far")
    total: int = Field(description="images requested")
    fraction: float = Field(
        description="0..1 of the whole job, denoising steps included: it moves during a "
        "batch (updated about once a second while the job renders; 1 when complete)"
    )


class Workers(BaseModel):
    live: int = Field(description="workers seen recently, or holding a job")
    available: bool = Field(description="false: no worker would serve a waiting job now")


class JobView(BaseModel):
    token: str
    state: JobState
    prompt: str = Field(description="as stored, after transliteration")
    resolution: str
    age_s: float = Field(description="seconds since the job was created (Redis clock)")
    position: int | None = Field(
        description="jobs (new or pending) served before this one: first come first served, "
        "those created earlier; with SDQ_SCHEDULING=fair, its exact place in the fair order "
        "(it can grow when other clients' jobs arrive); null once it is finished"
    )
    attempts: int = Field(description="claims that ended without completion")
    progress: Progress
    eta_s: float | None = Field(
        description="estimated seconds until complete, from measured render times per "
        "resolution, the work ahead (estimated from the queue's running sums, see "
        "docs/v2-api.md) and the live workers; null when unknown (no worker, no "
        "measurement) or finished"
    )
    workers: Workers
    cancel_requested: bool = Field(description="the job was cancelled while it rendered")
    queue_paused: bool = Field(
        default=False, description="the operator paused the queue: no job starts until it resumes"
    )
    preview: str | None = Field(
        default=None,
        description="while the job renders: the URL of a small JPEG of the image being "
        "drawn (a new one about once a second, each with its own `v`); null otherwise",
    )
    images: list[str] | None = Field(
        description="when complete: one URL per image, in order; null before, or when "
        "this API is not told where images are stored"
    )
    error: str | None = Field(description="why the last attempt ended (failed jobs)")
    notice: str | None = Field(description="a sentence for people: why it waits, what to do")
    links: JobLinks


class ResolutionTiming(BaseModel):
    images: int = Field(description="images measured")
    per_image_s: float = Field(description="recent per-image render time (weighted average)")
    mean_s: float = Field(description="lifetime mean per-image render time")


class QueueView(BaseModel):
    depth: dict[str, int] = Field(description="jobs now in each live state: new, pending")
    paused: bool = Field(
        default=False, description="the operator paused the queue: workers take no job"
    )
    totals: dict[str, int] = Field(
        description="lifetime counters: added, complete, failed, cancelled, requeued, ..."
    )
    workers: Workers
    jobs_per_minute: float | None = Field(
        description="completions per minute over rate_window_s; null until there is history"
    )
    rate_window_s: float | None
    render_s: dict[str, ResolutionTiming] = Field(description="per resolution <W>x<H>")


class ResolutionOption(BaseModel):
    value: str
    label: str
    example: str = Field(description="an example prompt suited to this resolution")


class CaptchaConfig(BaseModel):
    required: bool = Field(description="false: this server accepts any non-empty captcha")
    sitekey: str | None
    script: str | None = Field(description="the hCaptcha script to load when required")


class NumberRange(BaseModel):
    min: int
    max: int
    default: int


class ConfigView(BaseModel):
    """What a frontend needs to build its form."""

    captcha: CaptchaConfig
    resolutions: list[ResolutionOption]
    default_resolution: str
    number: NumberRange
