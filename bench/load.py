"""Load benchmark: simulated frontend users against the local cluster.

Each user does what the real frontend does: /addJob (the captcha checked by a
local fake hCaptcha), then /getJobStatus once a second until its job is
complete; then the next user takes its place, so the number of pollers holds.
Simulated GPU workers (bench.sleep_worker: the real worker loop, a renderer
that sleeps) complete the jobs. Everything goes through nginx.

    python -m bench.load                    # 1,000 users, 60 s (about 2 minutes)
    python -m bench.load --users 200 --duration 20

Prints a table: pollers held, requests/s, getJobStatus latency through the load
balancer (seen by the clients and by nginx), 5xx count, and whether every
user's QueueLength never increased and had counted down when its job started.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import itertools
import multiprocessing
import os
import resource
import statistics
import tempfile
import time
import uuid
from collections import Counter
from collections.abc import Sequence
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, cast

import aiohttp
import orjson
import uvloop
from redis.asyncio import Redis

from broker.keys import QueueKeys
from sdq.cluster import Cluster
from sdq.doubles.fake_hcaptcha import FakeHCaptcha

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


async def stored_jobs(
    redis_url: str, run_id: str, prefix: str = "sdq"
) -> dict[str, dict[str, str]]:
    """Every job in Redis whose prompt belongs to load run `run_id`, by token."""
    keys = QueueKeys(prefix)
    redis = Redis.from_url(redis_url, decode_responses=True)
    try:
        found: dict[str, dict[str, str]] = {}
        async for key in redis.scan_iter(match=keys.job_prefix + "*", count=1000):
            job = cast(dict[str, str], await redis.hgetall(key))  # decode_responses: str
            if job.get("prompt", "").startswith(f"load {run_id} "):
                found[key.removeprefix(keys.job_prefix)] = job
        return found
    finally:
        await redis.aclose()


def fifo_inversions(jobs: dict[str, dict[str, str]]) -> tuple[int, int]:
    """(jobs started at their first claim, how many started before an older job):
    the queue hands jobs out in the order they were added."""
    first = [job for job in jobs.values() if job.get("started_ms") and job.get("fence") == "1"]
    first.sort(key=lambda job: job["member"])  # <seq:016d><token>: insertion order
    started = [int(job["started_ms"]) for job in first]
    return len(first), sum(b < a for a, b in itertools.pairwise(started))


def percentile(values: Sequence[float], q: float) -> float:
    if not values:
        return float("nan")
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


def nginx_times(access_log: Path, path: str) -> list[float]:
    """$request_time of each request for `path` in the cluster's nginx access log."""
    times = []
    with access_log.open(encoding="utf-8") as lines:
        for line in lines:
            head, sep, tail = line.partition(f' {path}" ')
            if sep and head.endswith('"GET'):
                times.append(float(tail.split()[2]))
    return times


def cpu_seconds(pid: int) -> float:
    """User + system CPU time of a process and its children (nginx's workers), from
    Linux's /proc, in seconds."""
    total = 0.0
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text(encoding="ascii").rsplit(")", 1)[1].split()
        except OSError:  # the process has just exited
            continue
        if stat.parent.name == str(pid) or fields[1] == str(pid):
            total += (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")
    return total


def cpu_by_role(cluster: Cluster) -> dict[str, float]:
    """CPU seconds used so far by each kind of process of the cluster, and by us."""
    used: dict[str, float] = {}
    for name, proc in cluster.processes().items():
        if proc is not None and proc.poll() is None:
            role = name.split("-")[0]
            used[role] = used.get(role, 0.0) + cpu_seconds(proc.pid)
    used["load generator"] = time.process_time()  # the fake hCaptcha; + client processes
    return used


def table(
    load: Load,
    workers: int,
    lb_times: Sequence[float],
    cpu: dict[str, float],
    fifo: tuple[int, int],
) -> str:
    ms = 1000.0
    total = sum(load.responses.values())
    status_total = sum(n for (path, _), n in load.responses.items() if path == "/getJobStatus")
    observed = [user for user in load.users if user.queue_lengths]
    started = load.started_users()
    held = load.pollers or [0]
    rows = [
        (
            "users (pollers) held, min / median / max",
            f"{min(held)} / {statistics.median(held):.0f} / {max(held)}",
        ),
        ("run time", f"{load.elapsed_s:.1f} s"),
        ("requests/s, all", f"{total / load.elapsed_s:.0f}"),
        ("requests/s, getJobStatus", f"{status_total / load.elapsed_s:.0f}"),
        (
            "getJobStatus p50 / p99 / max, client",
            f"{percentile(load.status_latencies, 0.5) * ms:.1f}"
            f" / {percentile(load.status_latencies, 0.99) * ms:.1f}"
            f" / {max(load.status_latencies, default=0) * ms:.1f} ms",
        ),
        (
            "getJobStatus p50 / p99, nginx $request_time",
            f"{percentile(lb_times, 0.5) * ms:.0f} / {percentile(lb_times, 0.99) * ms:.0f} ms",
        ),
        (
            "jobs added / completed",
            f"{len(load.users)} / {sum(user.state == 'complete' for user in load.users)}",
        ),
        ("5xx responses", str(load.server_errors)),
        ("transport errors", str(sum(load.transport_errors.values()))),
        (
            "QueueLength never increased",
            f"{sum(u.never_increased for u in observed)} / {len(observed)} users",
        ),
        (
            f"QueueLength <= {workers - 1} (workers - 1) when the job started",
            f"{sum(u.started_queue_length <= workers - 1 for u in started if u.started_queue_length is not None)}"  # noqa: E501
            f" / {len(started)} users",
        ),
    ]
    rows.append(("jobs started out of FIFO order", f"{fifo[1]} of {fifo[0]}"))
    rows.append(
        (
            "CPU cores used, by role",
            ", ".join(f"{role} {seconds / load.elapsed_s:.2f}" for role, seconds in cpu.items()),
        )
    )
    width = max(len(name) for name, _ in rows)
    return "\n".join(f"  {name:<{width}}  {value}" for name, value in rows)


@dataclass
class Args:
    users: int
    duration: float
    ramp: float
    workers: int
    render_ms: int
    replicas: int
    data_dir: Path | None
    no_captcha: bool
    api_access_log: bool
    clients: int


def parse(argv: Sequence[str] | None = None) -> Args:
    parser = argparse.ArgumentParser(
        prog="python -m bench.load",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--users", type=int, default=1000, help="concurrent users (pollers)")
    parser.add_argument("--duration", type=float, default=60.0, help="seconds of load")
    parser.add_argument("--ramp", type=float, default=10.0, help="seconds to start all users")
    parser.add_argument("--workers", type=int, default=8, help="simulated GPU workers")
    parser.add_argument("--render-ms", type=int, default=150, help="sleep per image")
    parser.add_argument("--replicas", type=int, default=3, help="API replicas")
    parser.add_argument("--clients", type=int, default=2, help="load generator processes")
    parser.add_argument("--data-dir", type=Path, help="keep the cluster's data and logs here")
    parser.add_argument(
        "--no-captcha", action="store_true", help="SDQ_INSECURE_SKIP_CAPTCHA instead of the fake"
    )
    parser.add_argument(
        "--api-access-log",
        action=argparse.BooleanOptionalAction,
        default=True,
        help="the replicas' own access log (SDQ_ACCESS_LOG); nginx logs every request anyway",
    )
    ns = parser.parse_args(argv)
    return Args(
        ns.users,
        ns.duration,
        ns.ramp,
        ns.workers,
        ns.render_ms,
        ns.replicas,
        ns.data_dir,
        ns.no_captcha,
        ns.api_access_log,
        max(1, ns.clients),
    )


def cluster_for(args: Args, captcha_url: str, data_dir: Path) -> Cluster:
    env = {"SDQ_HCAPTCHA_SECRET": "bench-hcaptcha-secret", "SDQ_HCAPTCHA_VERIFY_URL": captcha_url}
    if args.no_captcha:
        env = {"SDQ_INSECURE_SKIP_CAPTCHA": "true"}
    env["SDQ_ACCESS_LOG"] = str(args.api_access_log).lower()
    return Cluster(
        data_dir,
        replicas=args.replicas,
        workers=args.workers,
        env=env,
        worker_args=("-m", "bench.sleep_worker", "--ms-per-image", str(args.render_ms)),
    )


def main(argv: Sequence[str] | None = None) -> int:
    args = parse(argv)
    with contextlib.ExitStack() as stack:
        data_dir = args.data_dir or Path(
            stack.enter_context(tempfile.TemporaryDirectory(prefix="sdq-bench-"))
        )
        fake = FakeHCaptcha().start()
        stack.callback(fake.stop)
        cluster = stack.enter_context(cluster_for(args, fake.url, data_dir))
        print(
            f"cluster up at {cluster.url}: {args.replicas} replicas, {args.workers} workers "
            f"at {args.render_ms} ms per image; {args.users} users for {args.duration:.0f} s",
            flush=True,
        )
        before = cpu_by_role(cluster)
        load, client_cpu = run_load(cluster.url, args.users, args.duration, args.ramp, args.clients)
        cpu = {role: used - before.get(role, 0.0) for role, used in cpu_by_role(cluster).items()}
        cpu["load generator"] += client_cpu
        time.sleep(1.5)  # nginx flushes its buffered access log every second
        lb_times = nginx_times(cluster.logs / "nginx-access.log", "/getJobStatus")
        fifo = fifo_inversions(uvloop.run(stored_jobs(cluster.redis_url, load.run_id)))
    print(table(load, args.workers, lb_times, cpu, fifo))
    if load.transport_errors:
        print("  transport errors:", dict(load.transport_errors))
    return 0 if load.server_errors == 0 else 1


if __name__ == "__main__":
    raise SystemExit(main())
