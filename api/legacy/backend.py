"""Extensions for our HTTP workers: extend a lease (with step progress and a live
preview), release a job, report render times.

The legacy protocol has no heartbeat and no way to give a job back; these fill
the gap without touching any legacy response. Each call is authenticated like
/getNextJob (`Authorization: Bearer <secret>` or `?secret=`), fenced by the
claim's fence (the `x-sdq-fence` header of setJobStatus pending), and
answers a JSON object. Every error is `{"error": "<message>"}`, so a worker can
tell our 404 (job not found) from a server that lacks the endpoint:

    400 bad parameter   401 missing/wrong secret   404 token not found
    409 stale claim / job not pending / job cancelled
    429 too many failed secrets                    503 storage unavailable

(api/errors.py's BACKEND table.)
"""

from __future__ import annotations

import base64
import binascii
import json
import logging
import math
from collections.abc import Awaitable, Callable
from typing import Any

from fastapi import APIRouter, HTTPException, Request
from fastapi.responses import JSONResponse

from api.auth import bearer_token
from api.errors import BACKEND, FieldError, Rejected, problem, unexpected
from api.legacy.query import is_utf8, parse_query
from api.services import Services
from broker.images import PREVIEW_MAX_BYTES
from broker.renders import RenderSample, WorkerFigures
from broker.tokens import is_token

log = logging.getLogger(__name__)

router = APIRouter(prefix="/backend", tags=["backend extensions"])

MAX_LEASE_MS = 3_600_000
MAX_SAMPLES = 64


Handler = Callable[[Request, Services, dict[str, str]], Awaitable[dict[str, Any]]]


def _error(status: int, message: str) -> JSONResponse:
    return JSONResponse({"error": message}, status_code=status)


def _bad_request(message: str) -> Rejected:
    return Rejected(400, [FieldError("", message)])


def _extension(handler: Handler) -> Callable[[Request], Awaitable[JSONResponse]]:
    """Authenticates, runs the handler, and maps every error to its status: the one place."""

    async def endpoint(request: Request) -> JSONResponse:
        services: Services = request.app.state.services
        params = parse_query(request.scope["query_string"])
        secret = params.get("secret", "") or bearer_token(request.headers.get("authorization"))
        if secret == "":
            return _error(401, "missing secret")
        try:
            client = services.clients.key(services.clients.address(request.scope))
            if not await services.abuse.authenticate(services.secrets, secret, client):
                return _error(401, "wrong secret")
            return JSONResponse(await handler(request, services, params))
        except HTTPException:
            raise  # the framework's own (413: body too large), in this shape by the app
        except Exception as exc:
            answer = problem(exc, BACKEND) or unexpected(request.url.path, exc)
            return _error(answer.status, "; ".join(answer.messages))

    # Not functools.wraps: FastAPI would read the handler's signature as parameters.
    endpoint.__name__, endpoint.__doc__ = handler.__name__, handler.__doc__
    return endpoint


def _token(params: dict[str, str]) -> str:
    token = params.get("token", "")
    if not is_token(token):
        raise _bad_request("token must be 32 lower-case hex characters")
    return token


def _integer(params: dict[str, str], name: str, low: int, high: int, default: int | None) -> int:
    raw = params.get(name, "")
    if raw == "" and default is not None:
        return default
    if not raw.isdecimal() or len(raw) > 18 or not low <= int(raw) <= high:
        raise _bad_request(f"{name} must be an integer from {low} to {high}")
    return int(raw)


@router.post("/lease", summary="Extend the lease of a claimed job and record its progress")
@_extension
async def extend_lease(
    request: Request, services: Services, params: dict[str, str]
) -> dict[str, Any]:
    """Query: token, fence, lease_ms, progress (images done). Optional JSON body:
    `{"fraction": 0..1 of the whole job, "preview": base64 JPEG}` (a preview of at
    most 32 KiB, so the body stays far below the 64 KiB limit)."""
    token = _token(params)
    fence = _integer(params, "fence", 1, 10**15, None)
    lease_ms = _integer(params, "lease_ms", 1000, MAX_LEASE_MS, services.settings.worker_lease_ms)
    progress = _integer(params, "progress", 0, 16, 0) if params.get("progress") else None
    fraction, preview = _live(await request.body())
    until = await services.queue.renew_lease(token, fence, lease_ms, progress, fraction, preview)
    return {"token": token, "fence": fence, "lease_until_ms": until}


def _live(raw: bytes) -> tuple[float | None, bytes | None]:
    """The lease body's fraction and preview; an empty body has neither."""
    if not raw.strip():
        return None, None
    try:
        body = json.loads(raw)
    except ValueError as exc:
        raise _bad_request("the body must be a JSON object") from exc
    if not isinstance(body, dict):
        raise _bad_request("the body must be a JSON object")
    fraction, preview = body.get("fraction"), body.get("preview")
    if fraction is not None and (
        type(fraction) not in (int, float) or not math.isfinite(fraction) or not 0 <= fraction <= 1
    ):
        raise _bad_request("fraction must be a number from 0 to 1")
    if preview is None:
        return fraction, None
    try:
        image = base64.b64decode(preview, validate=True) if isinstance(preview, str) else b""
    except (binascii.Error, ValueError):
        image = b""
    if not image.startswith(b"\xff\xd8\xff") or len(image) > PREVIEW_MAX_BYTES:
        raise _bad_request(f"preview must be a base64 JPEG of at most {PREVIEW_MAX_BYTES} bytes")
    return fraction, image


@router.post("/release", summary="Give a claimed job back (its attempt counts)")
@_extension
async def release_job(
    request: Request, services: Services, params: dict[str, str]
) -> dict[str, Any]:
    token = _token(params)
    fence = _integer(params, "fence", 1, 10**15, None)
    reason = params.get("reason", "")[:200] or "released by worker"
    if not is_utf8(reason):
        raise _bad_request("reason must be UTF-8 text")
    counted = _integer(params, "counted", 0, 1, 1) == 1  # 0: claimed ahead, never started
    state = await services.queue.release(token, fence, reason, counted)
    return {"token": token, "fence": fence, "state": state.value}


@router.post("/report", summary="Record per-image render times and that a worker is alive")
@_extension
async def report(request: Request, services: Services, params: dict[str, str]) -> dict[str, Any]:
    try:
        body = await request.json()
    except ValueError as exc:
        raise _bad_request("the body must be a JSON object") from exc
    worker, samples, leaving = _report_body(body)
    figures = _figures(body.get("figures"))
    now = await services.queue.record_renders(worker, samples, leaving, figures)
    return {"now_ms": now}


def _figures(text: object) -> WorkerFigures | None:
    if text is None:
        return None
    figures = WorkerFigures.decode(text) if isinstance(text, str) and len(text) <= 2000 else None
    if figures is None:
        raise _bad_request("figures must be as WorkerFigures.encode() writes them")
    return figures


def _report_body(body: object) -> tuple[str, list[RenderSample], bool]:
    if not isinstance(body, dict):
        raise _bad_request("the body must be a JSON object")
    worker, renders, leaving = body.get("worker"), body.get("renders", []), body.get("leaving")
    if not isinstance(worker, str) or not 0 < len(worker) <= 200 or not is_utf8(worker):
        raise _bad_request("worker must be a string of 1 to 200 characters")
    if not isinstance(renders, list) or len(renders) > MAX_SAMPLES:
        raise _bad_request(f"renders must be a list of at most {MAX_SAMPLES} objects")
    return worker, [_sample(entry) for entry in renders], leaving is True


def _sample(entry: object) -> RenderSample:
    fields = ("width", "height", "images", "ms")
    if not isinstance(entry, dict) or not all(_count(entry.get(name)) for name in fields):
        raise _bad_request("each render needs integer width, height, images and ms (>= 0)")
    if entry["images"] == 0 or not 0 < entry["width"] <= 8192 or not 0 < entry["height"] <= 8192:
        raise _bad_request("a render needs images > 0 and a size up to 8192x8192")
    return RenderSample(entry["width"], entry["height"], entry["images"], entry["ms"])


def _count(value: object) -> bool:
    return type(value) is int and 0 <= value < 2**53
