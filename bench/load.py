"""Load benchmark: simulated frontend users against the local cluster.

Each user does what the real frontend does: /addJob (the captcha checked by a
local fake hCaptcha), then /getJobStatus once a second until its job is
complete; then the next user takes its place, so the number of pollers holds.
Simulated GPU workers (bench.sleep_worker: the real worker loop, a renderer
that sleeps) complete the jobs. Everything goes through nginx.

    python -m bench.load                    # 1,000 users, 60 s (about 2 minutes)
    python -m bench.load --users 200 --duration 20
    python -m bench.load --mixed            # one heavy client, many light: fifo vs fair

Prints a table: pollers held, requests/s, getJobStatus latency through the load
balancer (seen by the clients and by nginx), 5xx count, and whether every
user's QueueLength never increased and had counted down when its job started.
"""

from __future__ import annotations

import argparse
import contextlib
import itertools
import os
import statistics
import tempfile
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import cast

import uvloop
from redis.asyncio import Redis

from bench.users import Load, run_load
from broker.keys import QueueKeys
from sdq.cluster import Cluster
from sdq.doubles.fake_hcaptcha import FakeHCaptcha


async def stored_jobs(
    redis_url: str, run_id: str, prefix: str = "sdq", label: str = "load"
) -> dict[str, dict[str, str]]:
    """Every job in Redis whose prompt belongs to run `run_id` (prompts start with
    "<label> <run_id> "), by token."""
    keys = QueueKeys(prefix)
    redis = Redis.from_url(redis_url, decode_responses=True)
    try:
        found: dict[str, dict[str, str]] = {}
        async for key in redis.scan_iter(match=keys.job_prefix + "*", count=1000):
            job = cast(dict[str, str], await redis.hgetall(key))  # decode_responses: str
            if job.get("prompt", "").startswith(f"{label} {run_id} "):
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


@dataclass(frozen=True)
class MixedArgs:
    """The mixed-client run (bench/mixed.py)."""

    heavy_jobs: int
    light: int
    workers: int
    render_ms: int
    spread: float
    rounds: int
    replicas: int


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
    mixed: MixedArgs | None = None


def parse(argv: Sequence[str] | None = None) -> Args:
    parser = argparse.ArgumentParser(
        prog="python -m bench.load",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--users", type=int, default=1000, help="concurrent users (pollers)")
    parser.add_argument("--duration", type=float, default=60.0, help="seconds of load")
    parser.add_argument("--ramp", type=float, default=10.0, help="seconds to start all users")
    parser.add_argument("--workers", type=int, help="simulated GPU workers (8; --mixed: 4)")
    parser.add_argument("--render-ms", type=int, help="sleep per image (150; --mixed: 400)")
    parser.add_argument("--replicas", type=int, help="API replicas (3; --mixed: 2)")
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
    mixed = parser.add_argument_group("--mixed (bench/mixed.py)")
    mixed.add_argument(
        "--mixed", action="store_true", help="one heavy client and many light ones, fifo vs fair"
    )
    mixed.add_argument("--heavy-jobs", type=int, default=50, help="jobs of the heavy client")
    mixed.add_argument("--light", type=int, default=40, help="light clients, one job each")
    mixed.add_argument(
        "--spread", type=float, default=0.8, help="light arrivals over this share of the drain"
    )
    mixed.add_argument("--rounds", type=int, default=2, help="rounds per scheduling mode")
    ns = parser.parse_args(argv)
    workers, render_ms, replicas = (8, 150, 3) if not ns.mixed else (4, 400, 2)
    workers = ns.workers if ns.workers is not None else workers
    render_ms = ns.render_ms if ns.render_ms is not None else render_ms
    replicas = ns.replicas if ns.replicas is not None else replicas
    mixed_args = MixedArgs(
        ns.heavy_jobs, ns.light, workers, render_ms, ns.spread, max(1, ns.rounds), replicas
    )
    return Args(
        ns.users,
        ns.duration,
        ns.ramp,
        workers,
        render_ms,
        replicas,
        ns.data_dir,
        ns.no_captcha,
        ns.api_access_log,
        max(1, ns.clients),
        mixed_args if ns.mixed else None,
    )


def cluster_for(args: Args, captcha_url: str, data_dir: Path) -> Cluster:
    env = {
        "SDQ_HCAPTCHA_SECRET": "bench-hcaptcha-secret-of-the-benchmarks",
        "SDQ_HCAPTCHA_VERIFY_URL": captcha_url,
    }
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
    if args.mixed is not None:
        from bench.mixed import run_mixed

        return run_mixed(args.mixed)
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
