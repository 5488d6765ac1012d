"""The HTTP source against a server that knows only the legacy protocol, as the
original service: secret in the URL only, no attempt header, no /backend/*."""

from __future__ import annotations

import asyncio
import json
import threading
import time
from pathlib import Path

import httpx
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from broker.renders import RenderSample
from gpu_worker.settings import WorkerSettings
from gpu_worker.sources.http import HttpSource
from gpu_worker.worker import Worker
from tests.gpu_worker.support import CountingRenderer, MemoryStore

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


class TwoJobLegacyServer(LegacyServer):
    """Two jobs, each with its own state."""

    TOKENS = ("e" * 32, "f" * 32)

    def __init__(self) -> None:
        super().__init__()
        self.states = dict.fromkeys(self.TOKENS, "new")

    async def next_job(self, request: Request) -> Response:
        if (error := self._secret_error(request)) is not None:
            return error
        for token, state in self.states.items():
            if state == "new":
                job = {"Token": token, "Number": 1, "Width": 576, "Height": 576, "Prompt": "p"}
                return self._reply(200, job)
        return self._reply(404, "no more jobs")

    async def set_status(self, request: Request) -> Response:
        if (error := self._secret_error(request)) is not None:
            return error
        token, target = request.query_params["token"], request.query_params["state"]
        if (self.states.get(token), target) not in {("new", "pending"), ("pending", "complete")}:
            return self._reply(400, "invalid state transition")
        self.states[token] = target
        return self._reply(200, "ok")


async def test_http_worker_claims_nothing_ahead_from_a_legacy_server(tmp_path: Path) -> None:
    """A legacy server has no release: a job claimed ahead could never be given back."""
    server = TwoJobLegacyServer()
    settings = WorkerSettings(
        transport="http", backend_secret=SECRET, api_url="http://legacy.test",
        images_dir=tmp_path, http_poll_s=0.05, report_interval_s=60,
    )  # fmt: skip
    gate = threading.Event()
    renderer = CountingRenderer(gate)
    source = HttpSource(settings, "w-legacy", httpx.ASGITransport(app=server.app))
    worker = Worker(source, renderer, MemoryStore(), settings)
    task = asyncio.create_task(worker.run())
    await asyncio.to_thread(renderer.started.wait, 10)
    await asyncio.sleep(0.3)

    assert list(server.states.values()) == ["pending", "new"]
    gate.set()
    deadline = time.monotonic() + 15
    while list(server.states.values()) != ["complete", "complete"]:
        assert time.monotonic() < deadline, server.states
        await asyncio.sleep(0.02)
    worker.stop()
    assert await asyncio.wait_for(task, 15) == 0
    await source.aclose()
