"""`sdq chaos`: simulated frontend users against a cluster while its processes are
SIGKILLed at random, then an account of every job the service acknowledged.

By default it starts its own cluster (sdq.cluster.Cluster: Redis with an
append-only file, API replicas behind a real nginx, test-pattern workers with a
simulated render time, leases of 3 s so faults resolve in seconds). Users add jobs
through nginx and poll them, as the frontend does. Meanwhile, at seeded random
intervals, one fault at a time: SIGKILL a worker, an API replica or the Redis
engine, wait a moment, start it again. When the time is up, the queue is given a
bounded time to drain, and the table of sdq.chaos_report is printed. Exit 0 when
every acknowledged job completed exactly once, 1 otherwise.

With `--attach URL --redis-url URL` it runs the users and the accounting against a
cluster it did not start; its faults are then whatever `--fault-cmd NAME KILL
RESTART` commands do (e.g. `docker compose kill worker` / `docker compose start
worker`). It does not trigger Sentinel failovers (see docs/deployment.md).
"""

from __future__ import annotations

import asyncio
import random
import secrets
import shlex
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from redis.asyncio import Redis
from redis.exceptions import RedisError

from broker.keys import QueueKeys
from sdq.chaos_report import Fault, Observed, log_completions, read_jobs, summarize, table
from sdq.chaos_report import completed_counter as read_completed
from sdq.chaos_users import DONE, Users
from sdq.cluster import Cluster
from sdq.doubles.fake_hcaptcha import FakeHCaptcha

KINDS = ("worker", "replica", "redis")
# Short leases and back-offs, as in the fault tests: a dead worker's job is free
# again after 3 s, workers find Redis again within 0.5 s of its restart.
FAST = {
    "SDQ_WORKER_LEASE_MS": "3000",
    "SDQ_SWEEP_INTERVAL_S": "0.5",
    "SDQ_IDLE_POLL_S": "0.5",
    "SDQ_RETRY_BASE_S": "0.1",
    "SDQ_RETRY_CAP_S": "0.5",
    "SDQ_ACCESS_LOG": "false",
    "SDQ_RENDERER": "test-pattern",
}


@dataclass
class Options:
    duration_s: float = 60.0
    seed: int | None = None  # None: a random seed, printed so the run can be replayed
    users: int = 20
    replicas: int = 3
    workers: int = 3
    render_ms: int = 400
    interval_s: tuple[float, float] = (2.0, 6.0)  # between the end of a fault and the next
    pause_s: float = 1.0  # how long a killed process stays down
    max_faults: int = 30
    kinds: Sequence[str] = KINDS
    drain_s: float = 60.0
    data_dir: Path | None = None  # kept; default: a temporary folder, removed on success
    attach_url: str | None = None
    redis_url: str | None = None
    key_prefix: str = "sdq"
    fault_cmds: Sequence[tuple[str, str, str]] = ()  # (name, kill command, restart command)


@dataclass
class Target:
    """One kind of fault: how many instances, how to kill one, how to bring it back."""

    kind: str
    count: int
    kill: Callable[[int], None]
    restart: Callable[[int], None]


@dataclass
class Run:
    options: Options
    seed: int
    users: Users
    targets: list[Target]
    redis_url: str
    cluster: Cluster | None = None
    faults: list[Fault] = field(default_factory=list)
    started: float = field(default_factory=time.monotonic)

    @property
    def keys(self) -> QueueKeys:
        return QueueKeys(self.options.key_prefix)

    def say(self, line: str) -> None:
        print(f"sdq chaos: {time.monotonic() - self.started:6.1f} s  {line}", flush=True)


def cluster_targets(cluster: Cluster, kinds: Sequence[str]) -> list[Target]:
    every = {
        "worker": Target("worker", cluster.workers, cluster.kill_worker, cluster.restart_worker),
        "replica": Target(
            "replica", cluster.replicas, cluster.kill_replica, cluster.restart_replica
        ),
        "redis": Target(
            "redis", 1, lambda _: cluster.kill_redis(), lambda _: cluster.restart_redis()
        ),
    }  # fmt: skip
    return [every[kind] for kind in kinds if every[kind].count > 0]


def command_target(name: str, kill: str, restart: str) -> Target:
    """A fault the operator defines: two commands, run without a shell."""

    def run(command: str) -> None:
        result = subprocess.run(  # noqa: S603 - the operator's own command line
            shlex.split(command), capture_output=True, text=True, timeout=120, check=False
        )
        if result.returncode != 0:
            raise RuntimeError(f"{command!r} exited {result.returncode}: {result.stderr[-200:]}")

    return Target(name, 1, lambda _: run(kill), lambda _: run(restart))


async def held_by(redis: Redis, keys: QueueKeys, worker: str) -> list[str]:
    """Tokens that `worker` holds under a lease right now."""
    tokens = [str(t) for t in await redis.zrange(keys.leases, 0, -1)]
    owners = [await redis.hget(keys.job(t), "worker") for t in tokens]
    return [t for t, owner in zip(tokens, owners, strict=True) if owner == worker]


async def inject(run: Run, redis: Redis, rng: random.Random, deadline: float) -> None:
    """One fault at a time until `deadline` (monotonic) or max_faults: kill, pause,
    restart; the next one after a random interval."""
    low, high = run.options.interval_s
    while len(run.faults) < run.options.max_faults and run.targets:
        wait = rng.uniform(low, high)
        if time.monotonic() + wait + run.options.pause_s >= deadline:
            return
        await asyncio.sleep(wait)
        target = rng.choice(run.targets)
        index = rng.randrange(target.count)
        fault = Fault(target.kind, f"{target.kind}-{index}", time.time())
        if target.kind == "worker" and run.cluster is not None:
            try:
                fault.held = await held_by(redis, run.keys, run.cluster.worker_id(index))
            except RedisError:  # only decoration of the report
                fault.held = []
        fault.killed_at = time.time()
        await asyncio.to_thread(target.kill, index)
        run.faults.append(fault)
        run.say(
            f"killed {fault.target}" + (f" (rendering {len(fault.held)} job)" if fault.held else "")
        )
        await asyncio.sleep(run.options.pause_s)
        await restart(run, target, index, fault)


async def restart(run: Run, target: Target, index: int, fault: Fault) -> None:
    for attempt in (1, 2):
        try:
            await asyncio.to_thread(target.restart, index)
        except (RuntimeError, OSError, subprocess.TimeoutExpired) as exc:  # tried once more
            fault.error = str(exc).splitlines()[0][:200]
            run.say(f"restart of {fault.target} failed (try {attempt}): {fault.error}")
            continue
        fault.restarted_at = time.time()
        run.say(f"restarted {fault.target} ({fault.restarted_at - fault.killed_at:.1f} s down)")
        return


async def drain(run: Run, redis: Redis) -> float:
    """Waits (at most drain_s) until every acknowledged job is finished; returns how long."""
    start = time.monotonic()
    tokens = [job.token for job in run.users.acknowledged]
    while time.monotonic() - start < run.options.drain_s:
        try:
            async with redis.pipeline(transaction=False) as pipe:
                for token in tokens:
                    pipe.hget(run.keys.job(token), "state")
                states = await pipe.execute()
        except RedisError:  # Redis restarting: ask again
            states = ["new"]
        if all(state is None or state in DONE for state in states):
            break
        await asyncio.sleep(0.5)
    return time.monotonic() - start


async def campaign(run: Run, log_offsets: dict[Path, int]) -> Observed:
    redis = Redis.from_url(run.redis_url, decode_responses=True, socket_timeout=5.0)
    try:
        counter_before = await read_completed(redis, run.keys)
        rng = random.Random(run.seed)  # noqa: S311 - a replayable schedule, not a secret
        deadline = time.monotonic() + run.options.duration_s
        run.say(f"{run.options.users} users for {run.options.duration_s:.0f} s, seed {run.seed}")
        await asyncio.gather(
            run.users.run(run.options.users, run.options.duration_s),
            inject(run, redis, rng, deadline),
        )
        run.say(f"load over: {len(run.users.acknowledged)} jobs acknowledged; draining")
        drained = await drain(run, redis)
        jobs = await read_jobs(redis, run.keys, f"chaos {run.users.run_id} ")
        counted = None
        if run.cluster is not None:  # nobody else adds jobs to a cluster of our own
            counted = await read_completed(redis, run.keys) - counter_before
    finally:
        await redis.aclose()
    logs = None
    images = None
    if run.cluster is not None:
        logs = log_completions(log_offsets, log_offsets)
        images = Path(run.cluster.child_env()["SDQ_IMAGES_DIR"])
    return Observed(jobs, logs, counted, images, drained)


def worker_logs(cluster: Cluster) -> dict[Path, int]:
    """Each worker's log and its size now: the report reads what this run wrote."""
    logs = [cluster.logs / f"worker-{i}.log" for i in range(cluster.workers)]
    return {log: log.stat().st_size if log.exists() else 0 for log in logs}


def run_chaos(options: Options) -> int:
    seed = options.seed if options.seed is not None else secrets.randbelow(2**31)
    users = Users("", secrets.token_hex(4), random.Random(seed + 1))  # noqa: S311 - replayable
    if options.attach_url is not None:
        if options.redis_url is None:
            print(
                "sdq chaos: --attach needs --redis-url (the accounting reads Redis)",
                file=sys.stderr,
            )
            return 2
        users.url = options.attach_url
        targets = [command_target(*cmd) for cmd in options.fault_cmds]
        run = Run(options, seed, users, targets, options.redis_url)
        observed = asyncio.run(campaign(run, {}))
        return report(run, observed, f"attached to {options.attach_url}")
    return run_owned(options, seed, users)


def run_owned(options: Options, seed: int, users: Users) -> int:
    data_dir = options.data_dir or Path(tempfile.mkdtemp(prefix="sdq-chaos-"))
    fake = FakeHCaptcha().start()
    env = {
        **FAST,
        "SDQ_TEST_PATTERN_MS_PER_IMAGE": str(options.render_ms),
        "SDQ_HCAPTCHA_SECRET": secrets.token_urlsafe(32),
        "SDQ_HCAPTCHA_VERIFY_URL": fake.url,
    }
    cluster = Cluster(data_dir, replicas=options.replicas, workers=options.workers, env=env)
    code = 1
    try:
        print(f"sdq chaos: starting a cluster in {data_dir}", flush=True)
        try:
            cluster.start()
        except RuntimeError as exc:
            print(f"sdq chaos: {exc}", file=sys.stderr)
            return 1
        users.url = cluster.url
        run = Run(
            options,
            seed,
            users,
            cluster_targets(cluster, options.kinds),
            cluster.redis_url,
            cluster,
        )
        observed = asyncio.run(campaign(run, worker_logs(cluster)))
        title = (
            f"sdq chaos: {options.duration_s:.0f} s, seed {seed}, {options.replicas} replicas, "
            f"{options.workers} workers ({options.render_ms} ms per image), {options.users} users"
        )
        code = report(run, observed, title)
    finally:
        cluster.stop()
        fake.stop()
        if code == 0 and options.data_dir is None:
            shutil.rmtree(data_dir, ignore_errors=True)
        else:
            print(f"sdq chaos: data and logs kept in {data_dir}", flush=True)
    return code


def report(run: Run, observed: Observed, title: str) -> int:
    summary = summarize(run.users, run.faults, observed)
    print(table(title, summary), flush=True)
    return 0 if summary.ok else 1
