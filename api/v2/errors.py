"""Every v2 error becomes `{"errors": [{"field", "message"}, ...]}`, here and nowhere else.

    ApiError(422)               fields break the /addJob rules (all of them listed)
    ApiError(400)               captcha failed
    RequestValidationError      the body is not a JSON object -> 400; a field has
                                the wrong JSON type -> 422
    JobNotFound                 404 token not found (never existed, or expired)
    InvalidTransition           409 the job is finished: nothing to cancel
    RateLimited                 429 too many requests (Retry-After), as /addJob
    TooManyOpenJobs             429 too many open jobs, as /addJob
    StorageUnavailable          503 storage unavailable (Redis); try again later

The mapping lives in a route class, so it covers the v2 routes only and leaves
the error format of every other route of the app alone.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Coroutine, Sequence
from typing import Any

from fastapi.exceptions import RequestValidationError
from fastapi.routing import APIRoute
from starlette.requests import Request
from starlette.responses import JSONResponse, Response

from api.abuse import RateLimited
from api.legacy.rules import FieldError
from broker.errors import InvalidTransition, JobNotFound, StorageUnavailable, TooManyOpenJobs

log = logging.getLogger(__name__)

NOT_FOUND = FieldError("token", "token not found")
NOT_AN_OBJECT = FieldError("body", "the body must be a JSON object")
FINISHED = FieldError("token", "the job is finished: nothing to cancel")
STORAGE_UNAVAILABLE = FieldError("", "storage unavailable")
TOO_MANY_REQUESTS = FieldError("", "too many requests")
TOO_MANY_OPEN_JOBS = FieldError("", "too many open jobs")


class ApiError(Exception):
    """A request the v2 API refuses, with every reason."""

    def __init__(self, status: int, errors: Sequence[FieldError]) -> None:
        super().__init__(status, errors)
        self.status = status
        self.errors = list(errors)


def error_response(status: int, errors: Sequence[FieldError]) -> JSONResponse:
    """The one error body. A FieldError with field "" is about no field: null."""
    body = [{"field": error.field or None, "message": error.message} for error in errors]
    return JSONResponse({"errors": body}, status_code=status)


def _validation_errors(exc: RequestValidationError) -> JSONResponse:
    problems: list[FieldError] = []
    for error in exc.errors():
        location = [str(part) for part in error.get("loc", ())]
        if error.get("type") == "json_invalid" or location == ["body"]:
            return error_response(400, [NOT_AN_OBJECT])
        field = location[1] if len(location) > 1 and location[0] == "body" else location[-1]
        problem = FieldError(field, _message(field, error))
        if problem not in problems:  # a union type reports each of its members
            problems.append(problem)
    return error_response(422, problems)


def _message(field: str, error: Any) -> str:
    if field == "number":
        return "number must be an integer or a string"
    if str(error.get("type", "")).endswith("_type"):
        return f"{field} must be a string"
    return str(error.get("msg", "invalid value"))


class V2Route(APIRoute):
    """An APIRoute whose errors become the v2 error shape."""

    def get_route_handler(self) -> Callable[[Request], Coroutine[Any, Any, Response]]:
        handler = super().get_route_handler()

        async def handle(request: Request) -> Response:
            try:
                return await handler(request)
            except ApiError as exc:
                return error_response(exc.status, exc.errors)
            except RequestValidationError as exc:
                return _validation_errors(exc)
            except JobNotFound:
                return error_response(404, [NOT_FOUND])
            except RateLimited as exc:
                reply = error_response(429, [TOO_MANY_REQUESTS])
                reply.headers["Retry-After"] = str(exc.retry_after_s)
                return reply
            except TooManyOpenJobs:
                return error_response(429, [TOO_MANY_OPEN_JOBS])
            except InvalidTransition:
                return error_response(409, [FINISHED])
            except StorageUnavailable as exc:
                log.error("storage unavailable: %s", exc)
                return error_response(503, [STORAGE_UNAVAILABLE])

        return handle
