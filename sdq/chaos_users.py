"""The simulated frontend users of `sdq chaos`.

Each user does what the real frontend does: /addJob through the load balancer,
then /getJobStatus once a second until its job is complete; a failed /addJob is
clicked again a moment later (a new job, never a retry of the old request), and
when a job is done the next user takes the tab. Every answer is timed against
the wall clock, so the report can tell which failures fell inside a fault and
how long after a SIGKILL the first request succeeded again.
"""

from __future__ import annotations

import asyncio
import random
import time
from collections import Counter
from dataclasses import dataclass, field
from typing import Any

import httpx

RESOLUTIONS = ("576x576", "768x576", "576x768", "1024x576")
DONE = ("complete", "failed", "cancelled")


@dataclass
class Acknowledged:
    """A job whose /addJob answered 200 with a token: the promise under test."""

    token: str
    prompt: str
    number: int
    added_at: float  # time.time()
    state: str = "new"  # as the user's last poll saw it


@dataclass
class Users:
    """Simulated browser tabs against `url`, and everything they saw."""

    url: str
    run_id: str
    rng: random.Random
    poll_s: float = 1.0
    acknowledged: list[Acknowledged] = field(default_factory=list)
    requests: Counter[str] = field(default_factory=Counter)  # per path
    failures: Counter[tuple[str, str]] = field(default_factory=Counter)  # (path, status)
    failure_times: list[float] = field(default_factory=list)
    ok_times: list[float] = field(default_factory=list)  # every 200, in order
    add_failures: int = 0
    _http: httpx.AsyncClient | None = None

    async def run(self, users: int, duration_s: float, ramp_s: float = 2.0) -> Users:
        limits = httpx.Limits(max_connections=users + 10, max_keepalive_connections=users + 10)
        async with httpx.AsyncClient(
            base_url=self.url, timeout=httpx.Timeout(10.0), limits=limits
        ) as http:
            self._http = http
            deadline = time.monotonic() + duration_s
            await asyncio.gather(*(self._tab(i, users, ramp_s, deadline) for i in range(users)))
        self._http = None
        return self

    def prompt(self, tab: int, k: int) -> str:
        return f"chaos {self.run_id} tab {tab} job {k}"

    async def _tab(self, tab: int, users: int, ramp_s: float, deadline: float) -> None:
        await asyncio.sleep(ramp_s * tab / users)
        k = 0
        while time.monotonic() + self.poll_s < deadline:
            await self.user(self.prompt(tab, k), f"good-{tab}-{k}", deadline)
            k += 1

    async def user(self, prompt: str, captcha: str, deadline: float) -> None:
        number = self.rng.choice((1, 1, 2))
        query = {
            "prompt": prompt,
            "number": str(number),
            "resolution": self.rng.choice(RESOLUTIONS),
            "captcha": captcha,
        }
        status, body = await self.get("/addJob", query)
        if status != 200 or not isinstance(body, str):
            self.add_failures += 1
            await asyncio.sleep(self.poll_s)  # the user clicks again after a moment
            return
        job = Acknowledged(body, prompt, number, time.time())
        self.acknowledged.append(job)
        tick = time.monotonic()
        while job.state not in DONE:
            tick += self.poll_s
            if tick >= deadline:
                return
            await asyncio.sleep(max(0.0, tick - time.monotonic()))
            status, body = await self.get("/getJobStatus", {"token": job.token})
            if status == 200 and isinstance(body, dict):
                job.state = str(body.get("State", job.state))

    async def get(self, path: str, query: dict[str, str]) -> tuple[int, Any]:
        """(status, parsed JSON body); status 0 when no answer came."""
        assert self._http is not None
        self.requests[path] += 1
        try:
            answer = await self._http.get(path, params=query)
        except httpx.TransportError as exc:
            self._failed(path, type(exc).__name__)
            return 0, None
        if answer.status_code != 200:
            self._failed(path, str(answer.status_code))
            return answer.status_code, None
        self.ok_times.append(time.time())
        try:
            return 200, answer.json()
        except ValueError:
            return 200, None

    def _failed(self, path: str, status: str) -> None:
        self.failures[(path, status)] += 1
        self.failure_times.append(time.time())
