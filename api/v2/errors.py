"""The v2 error shape, `{"errors": [{"field", "message"}, ...]}`, for every v2 route.

What each failure answers is api/errors.py's V2 table; this module only renders
it, and turns FastAPI's own validation errors into the same shape:

    the body is not a JSON object          400 "the body must be a JSON object"
    a field has the wrong JSON type        422, one entry per field
    anything the table does not know       500 "internal error" (logged, never shown)

The mapping lives in a route class, so it covers the v2 routes only and leaves
the error format of every other route of the app alone.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Coroutine, Sequence
from typing import Any

from fastapi.exceptions import RequestValidationError
from fastapi.routing import APIRoute
from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import JSONResponse, Response

from api.errors import INTERNAL, V2, FieldError, Problem, problem

log = logging.getLogger(__name__)

NOT_AN_OBJECT = FieldError("body", "the body must be a JSON object")


def error_response(status: int, errors: Sequence[FieldError]) -> JSONResponse:
    """The one error body. A FieldError with field "" is about no field: null."""
    body = [{"field": error.field or None, "message": error.message} for error in errors]
    return JSONResponse({"errors": body}, status_code=status)


def problem_response(answer: Problem) -> JSONResponse:
    reply = error_response(answer.status, answer.errors)
    if answer.retry_after_s is not None:
        reply.headers["Retry-After"] = str(answer.retry_after_s)
    return reply


def _validation_errors(exc: RequestValidationError) -> JSONResponse:
    problems: list[FieldError] = []
    for error in exc.errors():
        location = [str(part) for part in error.get("loc", ())]
        if error.get("type") == "json_invalid" or location == ["body"]:
            return error_response(400, [NOT_AN_OBJECT])
        field = location[1] if len(location) > 1 and location[0] == "body" else location[-1]
        found = FieldError(field, _message(field, error))
        if found not in problems:  # a union type reports each of its members
            problems.append(found)
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
            except RequestValidationError as exc:
                return _validation_errors(exc)
            except HTTPException:
                raise  # FastAPI's own answers (e.g. 405), rendered by the app
            except Exception as exc:
                answer = problem(exc, V2)
                if answer is None:
                    log.exception("unhandled error on %s", request.url.path)
                    answer = INTERNAL
                return problem_response(answer)

        return handle
