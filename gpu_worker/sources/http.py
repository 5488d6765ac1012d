"""The HTTP transport: the legacy backend protocol, plus our extensions where offered.

getNextJob -> setJobStatus pending -> (render, store) -> setJobStatus complete is
all a legacy server needs, so this worker also runs against the original service.
Against our API it also reads the claim's fence (header `x-sdq-fence`),
fences completion with it (`fence=`), renews the claim and releases failed
jobs (/backend/lease, /backend/release) and reports render times (/backend/report).
A server without those endpoints answers a plain 404/405: the worker notes it and
carries on with the legacy protocol alone.

The secret goes in `Authorization: Bearer`; a server that answers "missing secret"
to that gets `?secret=` from then on. Neither is ever logged.
"""

from __future__ import annotations

import asyncio
import base64
import json
import logging
from typing import Any

import httpx

from broker.job import Claim, JobSpec
from broker.renders import RenderSample, WorkerFigures
from broker.states import JobState
from gpu_worker.errors import JobCancelled, LeaseLost, SourceRefused, SourceUnavailable
from gpu_worker.settings import WorkerSettings
from gpu_worker.sources.http_client import ApiClient, HttpUnreachable, Reply

log = logging.getLogger(__name__)

CLAIM_TRIES = 5  # a job taken by another backend between getNextJob and pending
CANCELLED = "job cancelled"  # the extension's 409 for a claim whose job was cancelled


class HttpSource:
    name = "http"

    def __init__(
        self,
        settings: WorkerSettings,
        worker_id: str,
        transport: httpx.AsyncBaseTransport | None = None,
    ) -> None:
        """`transport`: an httpx transport for tests (ASGITransport on the real app)."""
        self._settings = settings
        self._worker_id = worker_id
        self._secret = settings.secret()
        self._bearer = {"Authorization": f"Bearer {self._secret}"}
        self._secret_in_query = False
        self.extensions = True  # until the server shows it has none
        self._client = ApiClient(settings.api_url, settings.http_timeout_s, transport)

    async def claim(self) -> Claim | None:
        for _ in range(CLAIM_TRIES):
            reply = await self._call("GET", "/getNextJob", {})
            if reply.status == 404:
                return None
            job = _next_job(reply)
            reply = await self._call(
                "GET", "/setJobStatus", {"token": job.token, "state": "pending"}
            )
            if reply.status == 200:
                return Claim(
                    job,
                    _int_header(reply, "x-sdq-fence"),
                    _int_header(reply, "x-sdq-lease-until-ms"),
                )
            if reply.status not in (400, 404):  # 400: set pending by another backend
                raise SourceUnavailable(f"setJobStatus pending: HTTP {reply.status}")
        return None

    @property
    def renews(self) -> bool:
        return self.extensions

    async def wait_for_work(self) -> None:
        await asyncio.sleep(self._settings.http_poll_s)

    async def renew(
        self,
        claim: Claim,
        progress: int,
        fraction: float | None = None,
        preview: bytes | None = None,
    ) -> None:
        """POST /backend/lease; the fraction and the preview (base64, a few KiB: far
        below the API's 64 KiB body limit) go in a small JSON body."""
        if claim.fence is None or not self.extensions:
            return
        params = {
            "token": claim.job.token,
            "fence": str(claim.fence),
            "lease_ms": str(self._settings.worker_lease_ms),
            "progress": str(progress),
        }
        live: dict[str, object] = {}
        if fraction is not None:
            live["fraction"] = round(fraction, 4)
        if preview:
            live["preview"] = base64.b64encode(preview).decode("ascii")
        body = json.dumps(live).encode() if live else None
        reply = await self._call("POST", "/backend/lease", params, body)
        self._extension_reply(reply, "lease")

    async def complete(self, claim: Claim) -> None:
        params = {"token": claim.job.token, "state": "complete"}
        if claim.fence is not None:
            params["fence"] = str(claim.fence)
        reply = await self._call("GET", "/setJobStatus", params)
        if reply.status in (400, 404, 409):  # superseded, gone, or not pending any more
            raise LeaseLost(f"setJobStatus complete: {_message(reply)}")
        if reply.status != 200:
            raise SourceUnavailable(f"setJobStatus complete: HTTP {reply.status}")

    async def release(self, claim: Claim, reason: str, counted: bool = True) -> JobState | None:
        if claim.fence is None or not self.extensions:
            log.warning(
                "job %s cannot be released: the API has no release extension", _short(claim)
            )
            return None
        params = {"token": claim.job.token, "fence": str(claim.fence), "reason": reason[:200]}
        if not counted:
            params["counted"] = "0"
        reply = await self._call("POST", "/backend/release", params)
        body = self._extension_reply(reply, "release")
        return None if body is None else JobState(body["state"])

    async def report(
        self,
        samples: list[RenderSample],
        leaving: bool,
        figures: WorkerFigures | None = None,
    ) -> None:
        if not self.extensions:
            return
        body: dict[str, object] = {
            "worker": self._worker_id,
            "leaving": leaving,
            "renders": [
                {"width": s.width, "height": s.height, "images": s.images, "ms": s.ms}
                for s in samples
            ],
        }
        if figures is not None:
            body["figures"] = figures.encode()
        reply = await self._call("POST", "/backend/report", {}, json.dumps(body).encode())
        self._extension_reply(reply, "report")

    async def take_due_images(self, limit: int) -> list[str]:
        return []  # the API's sweeper deletes them where it serves the folder

    async def aclose(self) -> None:
        await self._client.aclose()

    def _extension_reply(self, reply: Reply, what: str) -> dict[str, Any] | None:
        """The JSON object of an extension's answer; None where the server has none."""
        body = reply.json()
        if reply.status == 200 and isinstance(body, dict):
            return body
        if not (isinstance(body, dict) and "error" in body):
            log.info("the API has no /backend/%s: using the legacy protocol only", what)
            self.extensions = False
            return None
        if reply.status == 409 and body["error"] == CANCELLED:
            raise JobCancelled(f"{what}: {body['error']}")
        if reply.status in (404, 409):
            raise LeaseLost(f"{what}: {body['error']}")
        raise SourceUnavailable(f"{what}: HTTP {reply.status} {body['error']}")

    async def _call(
        self,
        method: str,
        path: str,
        params: dict[str, str],
        body: bytes | None = None,
    ) -> Reply:
        reply = await self._send(method, path, params, body)
        if not self._secret_in_query and _message(reply) == "missing secret":
            self._secret_in_query = True  # this server reads the secret from the URL only
            reply = await self._send(method, path, params, body)
        if reply.status == 401 or _message(reply) == "wrong secret":
            raise SourceRefused("the API refuses the backend secret")
        if reply.status >= 500:
            raise SourceUnavailable(f"{path}: HTTP {reply.status}")
        return reply

    async def _send(
        self,
        method: str,
        path: str,
        params: dict[str, str],
        body: bytes | None,
    ) -> Reply:
        if self._secret_in_query:
            params, headers = {**params, "secret": self._secret}, {}
        else:
            headers = self._bearer
        try:
            return await self._client.request(method, path, params, headers, body)
        except HttpUnreachable as exc:  # its message never holds the URL (the secret)
            raise SourceUnavailable(f"{path}: {exc}") from exc
        except ValueError as exc:  # the only header we vary is the secret's
            raise SourceRefused("the backend secret cannot be sent in an HTTP header") from exc


def _message(reply: Reply) -> str:
    """The legacy error string of a 4xx reply, or the `error` of an extension's."""
    body = reply.json() if reply.status >= 400 else None
    if isinstance(body, dict):
        body = body.get("error")
    return body if isinstance(body, str) else ""


def _next_job(reply: Reply) -> JobSpec:
    body = reply.json()
    if reply.status != 200 or not isinstance(body, dict):
        raise SourceUnavailable(f"getNextJob: HTTP {reply.status}")
    try:
        return JobSpec(
            token=str(body["Token"]),
            number=int(body["Number"]),
            width=int(body["Width"]),
            height=int(body["Height"]),
            prompt=str(body["Prompt"]),
        )
    except (KeyError, TypeError, ValueError) as exc:
        raise SourceUnavailable("getNextJob: malformed job") from exc


def _int_header(reply: Reply, name: str) -> int | None:
    value = reply.headers.get(name, "")
    return int(value) if value.isdecimal() else None


def _short(claim: Claim) -> str:
    return claim.job.token[:8]
