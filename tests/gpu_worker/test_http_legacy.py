"""The HTTP source against a server that knows only the legacy protocol, as the
original service: secret in the URL only, no attempt header, no /backend/*."""

from __future__ import annotations

import json

import httpx
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from broker.renders import RenderSample
from gpu_worker.settings import WorkerSettings
from gpu_worker.sources.http import HttpSource

SECRET = "legacy-secret-of-the-http-tests"
TOKEN = "e" * 32


class LegacyServer:
    """One job; the original's answers, byte for byte in shape."""

    def __init__(self) -> None:
        self.state = "new"
        self.calls: list[str] = []
        self.app = Starlette(
            routes=[
                Route("/getNextJob", self.next_job, methods=["GET"]),
                Route("/setJobStatus", self.set_status, methods=["GET"]),
            ]
        )

    def _reply(self, status: int, body: object) -> Response:
        return Response(json.dumps(body) + "\n", status, media_type="application/json")

    def _secret_error(self, request: Request) -> Response | None:
        secret = request.query_params.get("secret", "")
        if secret == "":
            return self._reply(400, "missing secret")
        return None if secret == SECRET else self._reply(400, "wrong secret")

    async def next_job(self, request: Request) -> Response:
        self.calls.append(str(request.url.query))
        if (error := self._secret_error(request)) is not None:
            return error
        if self.state != "new":
            return self._reply(404, "no more jobs")
        job = {"Token": TOKEN, "Number": 2, "Width": 576, "Height": 768, "Prompt": "old times"}
        return self._reply(200, job)

    async def set_status(self, request: Request) -> Response:
        self.calls.append(str(request.url.query))
        if (error := self._secret_error(request)) is not None:
            return error
        target = request.query_params["state"]
        if (self.state, target) not in {("new", "pending"), ("pending", "complete")}:
            return self._reply(400, "invalid state transition")
        self.state = target
        return self._reply(200, "ok")


async def test_http_source_runs_a_job_through_a_legacy_server() -> None:
    server = LegacyServer()
    settings = WorkerSettings(transport="http", backend_secret=SECRET, api_url="http://legacy.test")
    source = HttpSource(settings, "w-legacy", httpx.ASGITransport(app=server.app))
    claim = await source.claim()
    assert claim is not None
    assert (claim.job.token, claim.job.number, claim.job.height) == (TOKEN, 2, 768)
    assert (claim.fence, claim.lease_until_ms) == (None, None)  # no extension headers
    await source.renew(claim, 1)  # nothing to renew on a legacy server: no call
    await source.report([RenderSample(576, 768, 2, 900)], leaving=False)
    assert await source.release(claim, "not supported") is None
    await source.complete(claim)
    assert server.state == "complete"
    assert await source.claim() is None
    await source.aclose()
    # The Bearer header was answered "missing secret" once; from then on ?secret=.
    assert server.calls[0] == ""
    assert all(f"secret={SECRET}" in query for query in server.calls[1:])
    assert not any("fence=" in query for query in server.calls)
