"""The load benchmark's simulated frontend users (bench/load.py runs them).

Each user does what the real frontend does: /addJob, then /getJobStatus once a
second until its job is done; then the next user takes its place, so the
number of pollers holds. Users are split over several client processes.
"""

from __future__ import annotations

import asyncio
import itertools
import multiprocessing
import resource
import time
import uuid
from collections import Counter
from collections.abc import Sequence
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass, field
from typing import Any

import aiohttp
import orjson
import uvloop

DONE = ("complete", "failed")


@dataclass
class UserResult:
    """What one user saw of its job, poll by poll."""

    token: str
    prompt: str
    queue_lengths: list[int] = field(default_factory=list)
    started_queue_length: int | None = None  # at the first poll that saw it started
    state: str = "new"

    def observe(self, body: dict[str, Any]) -> None:
        self.queue_lengths.append(int(body["QueueLength"]))
        if body["State"] != "new" and self.started_queue_length is None:
            self.started_queue_length = int(body["QueueLength"])
        self.state = str(body["State"])

    @property
    def never_increased(self) -> bool:
        return all(b <= a for a, b in itertools.pairwise(self.queue_lengths))


@dataclass
class Load:
    """Simulated users of one run and everything they measured."""

    url: str
    poll_s: float = 1.0
    run_id: str = field(default_factory=lambda: uuid.uuid4().hex[:8])
    status_latencies: list[float] = field(default_factory=list)
    responses: Counter[tuple[str, int]] = field(default_factory=Counter)
    transport_errors: Counter[str] = field(default_factory=Counter)
    users: list[UserResult] = field(default_factory=list)
    add_failures: int = 0
    polling: int = 0
    pollers: list[int] = field(default_factory=list)  # sampled once a second
    elapsed_s: float = 0.0
    _http: aiohttp.ClientSession | None = None

    async def run(
        self, users: int, duration_s: float, ramp_s: float, slots: Sequence[int] | None = None
    ) -> Load:
        """`users` browser tabs for `duration_s`; `slots`: which of them this process
        runs (all by default), so several processes can share one run."""
        slots = range(users) if slots is None else slots
        connector = aiohttp.TCPConnector(limit=len(slots) + 50)
        timeout = aiohttp.ClientTimeout(total=10.0)
        async with aiohttp.ClientSession(self.url, connector=connector, timeout=timeout) as http:
            self._http = http
            start = time.monotonic()
            deadline = start + duration_s
            sampler = asyncio.create_task(self._sample(start + ramp_s, deadline))
            await asyncio.gather(*(self._slot(i, users, ramp_s, deadline) for i in slots))
            self.elapsed_s = time.monotonic() - start
            sampler.cancel()
        self._http = None
        return self

    def merge(self, other: Load) -> None:
        """Adds another process's share of the same run."""
        self.status_latencies += other.status_latencies
        self.responses.update(other.responses)
        self.transport_errors.update(other.transport_errors)
        self.users += other.users
        self.add_failures += other.add_failures
        if self.pollers:
            self.pollers = [a + b for a, b in zip(self.pollers, other.pollers, strict=False)]
        else:
            self.pollers = list(other.pollers)
        self.elapsed_s = max(self.elapsed_s, other.elapsed_s)

    async def _sample(self, after: float, until: float) -> None:
        await asyncio.sleep(max(0.0, after - time.monotonic()))
        while time.monotonic() < until:
            self.pollers.append(self.polling)
            await asyncio.sleep(1.0)

    async def _slot(self, i: int, users: int, ramp_s: float, deadline: float) -> None:
        """One browser tab: a user, then the next one, until the deadline."""
        await asyncio.sleep(ramp_s * i / users)
        k = 0
        while time.monotonic() + self.poll_s < deadline:  # a new user polls at least once
            await self.user(f"load {self.run_id} user {i} job {k}", f"good-{i}-{k}", deadline)
            k += 1

    async def user(self, prompt: str, captcha: str, deadline: float) -> UserResult | None:
        """addJob, then poll until the job is done or the deadline passes."""
        query = {"prompt": prompt, "number": "1", "resolution": "576x576", "captcha": captcha}
        status, body = await self.get("/addJob", query)
        if status != 200:
            self.add_failures += 1
            await asyncio.sleep(self.poll_s)  # a user would click again after a moment
            return None
        result = UserResult(body, prompt)
        self.users.append(result)
        self.polling += 1
        try:
            await self._poll(result, deadline)
        finally:
            self.polling -= 1
        return result

    async def _poll(self, result: UserResult, deadline: float) -> None:
        tick = time.monotonic()
        while result.state not in DONE:
            tick += self.poll_s
            if tick >= deadline:
                return
            await asyncio.sleep(max(0.0, tick - time.monotonic()))
            started = time.perf_counter()
            status, body = await self.get("/getJobStatus", {"token": result.token})
            if status == 200:
                self.status_latencies.append(time.perf_counter() - started)
                result.observe(body)

    async def get(self, path: str, query: dict[str, str]) -> tuple[int, Any]:
        """(status, parsed JSON body); status 0 when no answer came (counted apart)."""
        assert self._http is not None
        try:
            async with self._http.get(path, params=query) as answer:
                raw = await answer.read()
                status = answer.status
        except (aiohttp.ClientError, TimeoutError) as exc:
            self.transport_errors[f"{path} {type(exc).__name__}"] += 1
            return 0, None
        self.responses[(path, status)] += 1
        try:
            return status, orjson.loads(raw)
        except orjson.JSONDecodeError:
            return status, raw

    # -- figures ----------------------------------------------------------------

    @property
    def server_errors(self) -> int:
        return sum(n for (_, status), n in self.responses.items() if status >= 500)

    def started_users(self) -> list[UserResult]:
        return [user for user in self.users if user.started_queue_length is not None]


def _run_share(url: str, run_id: str, args: tuple[int, float, float, int, int]) -> Load:
    users, duration_s, ramp_s, share, shares = args
    load = Load(url, run_id=run_id)
    return uvloop.run(load.run(users, duration_s, ramp_s, range(share, users, shares)))


def run_load(
    url: str, users: int, duration_s: float, ramp_s: float, processes: int
) -> tuple[Load, float]:
    """The users split over `processes` client processes (browsers are many; one
    Python process would get one CPU share of a busy machine); returns the merged
    figures and the CPU seconds the client processes used."""
    run_id = uuid.uuid4().hex[:8]
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    context = multiprocessing.get_context("spawn")
    with ProcessPoolExecutor(processes, mp_context=context) as pool:
        shares = [(users, duration_s, ramp_s, k, processes) for k in range(processes)]
        results = list(pool.map(_run_share, [url] * processes, [run_id] * processes, shares))
    merged = Load(url, run_id=run_id)
    for share in results:
        merged.merge(share)
    after = resource.getrusage(resource.RUSAGE_CHILDREN)  # the pool's processes, ended
    used = after.ru_utime + after.ru_stime - before.ru_utime - before.ru_stime
    return merged, used


# -- mixed clients (python -m bench.load --mixed, bench/mixed.py) ------------------


def client_session(url: str, address: str) -> aiohttp.ClientSession:
    """A session whose connections leave from `address` (127.0.0.2, 127.0.0.3, ...:
    all of 127/8 is loopback on Linux), so that behind nginx each simulated client is
    its own address, as the API's limits and fair queue see it."""
    connector = aiohttp.TCPConnector(limit=8, local_addr=(address, 0))
    return aiohttp.ClientSession(url, connector=connector, timeout=aiohttp.ClientTimeout(10.0))


async def submit_and_wait(
    http: aiohttp.ClientSession, prompt: str, poll_s: float, deadline: float
) -> str | None:
    """/addJob, then /getJobStatus every `poll_s` until complete; the token, or None."""
    query = {"prompt": prompt, "number": "1", "resolution": "576x576", "captcha": "good"}
    async with http.get("/addJob", params=query) as reply:
        if reply.status != 200:
            return None
        token = str(orjson.loads(await reply.read()))
    while time.monotonic() < deadline:
        await asyncio.sleep(poll_s)
        async with http.get("/getJobStatus", params={"token": token}) as reply:
            if reply.status == 200 and orjson.loads(await reply.read())["State"] in DONE:
                break
    return token


async def heavy_client(url: str, address: str, jobs: int, prompt: str, deadline: float) -> int:
    """One visitor who queues `jobs` jobs at once (then polls its last one)."""
    added = 0
    async with client_session(url, address) as http:
        query = {"number": "1", "resolution": "576x576", "captcha": "good"}
        for k in range(jobs):
            async with http.get("/addJob", params={**query, "prompt": f"{prompt} {k}"}) as reply:
                added += reply.status == 200
        await submit_and_wait(http, f"{prompt} last", 1.0, deadline)
    return added + 1


async def light_client(
    url: str, address: str, prompt: str, start_s: float, poll_s: float, deadline: float
) -> bool:
    """One visitor with one job, arriving after `start_s`."""
    await asyncio.sleep(start_s)
    async with client_session(url, address) as http:
        return await submit_and_wait(http, prompt, poll_s, deadline) is not None
