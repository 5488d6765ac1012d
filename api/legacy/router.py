"""Serves the four legacy paths as a bare ASGI layer in front of FastAPI.

The legacy endpoints are validated by hand (api/rules.py), so FastAPI's
dependency and model layers would only cost time on the hottest path (the
frontend polls every second). `LegacyFirstApp` answers them before FastAPI's
per-request layers (telemetry, body limit, exception middleware) even start;
every other path goes on to the FastAPI app.
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any

from fastapi import FastAPI
from starlette.types import ASGIApp, Receive, Scope, Send

from api.access_log import AccessLog
from api.auth import bearer_token
from api.errors import LEGACY, Problem, problem, unexpected
from api.legacy import endpoints as legacy
from api.legacy.endpoints import LegacyReply
from api.legacy.format import error_body, string_body
from api.legacy.query import parse_query
from api.metrics import HttpMetrics, HttpMetricsMiddleware
from api.services import Services

log = logging.getLogger(__name__)

Handler = Callable[[Services, legacy.Params, str, str | None], Awaitable[LegacyReply]]

_JSON = (b"content-type", b"application/json")
_CORS = (b"access-control-allow-origin", b"*")
_PREFLIGHT = (
    (b"access-control-allow-methods", b"GET, HEAD, POST, OPTIONS"),
    (b"access-control-max-age", b"86400"),
)
_QUERY_TOO_LONG = LegacyReply(414, string_body("query string too long"))  # SDQ_MAX_QUERY_BYTES


@dataclass(frozen=True, slots=True)
class Endpoint:
    handler: Handler
    frontend: bool  # frontend paths send CORS headers on every response
    needs_client: bool = False  # resolve the client's address (trusted proxies) for it


ENDPOINTS: dict[str, Endpoint] = {
    "/addJob": Endpoint(legacy.add_job, frontend=True, needs_client=True),
    "/getJobStatus": Endpoint(legacy.get_job_status, frontend=True),
    "/getNextJob": Endpoint(legacy.get_next_job, frontend=False, needs_client=True),
    "/setJobStatus": Endpoint(legacy.set_job_status, frontend=False, needs_client=True),
}


class LegacyRouter:
    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        endpoint = ENDPOINTS.get(scope["path"]) if scope["type"] == "http" else None
        if endpoint is None:
            await self.app(scope, receive, send)
            return
        if scope["method"] == "OPTIONS":
            reply = LegacyReply(200, string_body("ok"), _preflight_headers(scope, endpoint))
        else:
            reply = await self._handle(endpoint, scope)
        headers = [_JSON, (b"content-length", str(len(reply.body)).encode()), *reply.headers]
        if endpoint.frontend:
            headers.append(_CORS)
        await send({"type": "http.response.start", "status": reply.status, "headers": headers})
        await send({"type": "http.response.body", "body": reply.body})

    async def _handle(self, endpoint: Endpoint, scope: Scope) -> LegacyReply:
        try:
            services: Services = scope["app"].state.services
            if len(scope["query_string"]) > services.settings.max_query_bytes:
                return _QUERY_TOO_LONG
            params = parse_query(scope["query_string"])
            secret = params.get("secret", "") or bearer_token(_header(scope, b"authorization"))
            client = services.clients.address(scope) if endpoint.needs_client else None
            return await endpoint.handler(services, params, secret, client)
        except Exception as exc:
            return _reply(problem(exc, LEGACY) or unexpected(scope["path"], exc))


class LegacyFirstApp(FastAPI):
    """The FastAPI app, with the legacy paths answered before FastAPI's own layers.

    FastAPI wraps every request in telemetry, body-limit and exception
    middleware; on the legacy paths that cost about a third of the time, for
    nothing (they read no body and answer every error themselves). With
    `access_log`, legacy requests are logged by the same redacting AccessLog.
    """

    def __init__(
        self, *, access_log: bool = False, http_metrics: HttpMetrics | None = None, **kwargs: Any
    ) -> None:
        super().__init__(**kwargs)
        router = LegacyRouter(super().__call__)
        legacy: ASGIApp = AccessLog(router) if access_log else router
        if http_metrics is not None:
            legacy = HttpMetricsMiddleware(legacy, http_metrics, by_path=True)
        self._legacy = legacy

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await super().__call__(scope, receive, send)
            return
        if scope["path"] in ENDPOINTS:
            scope["app"] = self
            await self._legacy(scope, receive, send)
            return
        try:
            await super().__call__(scope, receive, send)
        except Exception as exc:  # answered already (a 500, by the app's handler)
            unexpected(scope["path"], exc)


def _reply(answer: Problem) -> LegacyReply:
    """The contract's error body: every message joined by ", ", as one JSON string."""
    headers: tuple[tuple[bytes, bytes], ...] = ()
    if answer.retry_after_s is not None:
        headers = ((b"retry-after", b"%d" % answer.retry_after_s),)
    return LegacyReply(answer.status, error_body(answer.messages), headers)


def _header(scope: Scope, name: bytes) -> str | None:
    for key, value in scope["headers"]:
        if key == name:
            return str(value.decode("latin-1"))
    return None


def _preflight_headers(scope: Scope, endpoint: Endpoint) -> tuple[tuple[bytes, bytes], ...]:
    if not endpoint.frontend:
        return ()
    requested = _header(scope, b"access-control-request-headers")
    allow = ((b"access-control-allow-headers", requested.encode("latin-1")),) if requested else ()
    return _PREFLIGHT + allow
