"""The v2 error shape, `{"errors": [{"field", "message"}, ...]}`, for every v2 route.

What each failure answers is api/errors.py's V2 table; this module only renders
it, and turns FastAPI's own validation errors into the same shape:

    the body is not a JSON object          400 "the body must be a JSON object"
    a field has the wrong JSON type        422, one entry per field
    anything the table does not know       500 "internal error" (logged, never shown)

The mapping lives in a route class (V2Route). `install_handlers` adds the rest:
FastAPI's own errors on a /v2/ path (unknown route, wrong method) take the same
shape, and an error no route caught anywhere in the app answers a JSON 500
"internal error" (one log line per interval, never a traceback).
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Coroutine, Sequence
from typing import Any

from fastapi import FastAPI
from fastapi.exception_handlers import http_exception_handler
from fastapi.exceptions import RequestValidationError
from fastapi.routing import APIRoute
from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import JSONResponse, Response

from api.errors import INTERNAL, V2, FieldError, Problem, problem, unexpected

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
    found: list[tuple[FieldError, bool]] = []  # (problem, raised by our own validator)
    for error in exc.errors():
        location = [str(part) for part in error.get("loc", ())]
        if error.get("type") == "json_invalid" or location == ["body"]:
            return error_response(400, [NOT_AN_OBJECT])
        field = location[1] if len(location) > 1 and location[0] == "body" else location[-1]
        found.append(
            (FieldError(field, _message(field, error)), error.get("type") == "value_error")
        )
    # A union type reports each of its members: where one member's own validator
    # explains the problem (e.g. not UTF-8), the others' type errors add nothing.
    explained = {error.field for error, ours in found if ours}
    problems: list[FieldError] = []
    for error, ours in found:
        if (ours or error.field not in explained) and error not in problems:
            problems.append(error)
    return error_response(422, problems)


def _message(field: str, error: Any) -> str:
    if error.get("type") == "value_error":  # our own validators (e.g. valid UTF-8)
        return str(error.get("ctx", {}).get("error", error.get("msg", "invalid value")))
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
                return problem_response(problem(exc, V2) or unexpected(request.url.path, exc))

        return handle


async def _http_error(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, HTTPException)
    path, message = request.url.path, str(exc.detail).lower()
    if path.startswith("/backend/"):  # the backend extension's shape
        return JSONResponse({"error": message}, exc.status_code, exc.headers)
    if not path.startswith("/v2/"):
        return await http_exception_handler(request, exc)
    reply = error_response(exc.status_code, [FieldError("", message)])
    for name, value in (exc.headers or {}).items():
        reply.headers[name] = value
    return reply


async def _internal_error(request: Request, exc: Exception) -> Response:
    # Starlette's outermost middleware calls this, answers, then re-raises: the app
    # (api/legacy/router.py, LegacyFirstApp) logs it once and keeps it from uvicorn.
    return problem_response(INTERNAL)


def install_handlers(app: FastAPI) -> None:
    app.add_exception_handler(HTTPException, _http_error)
    app.add_exception_handler(Exception, _internal_error)
