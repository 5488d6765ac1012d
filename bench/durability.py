"""Durability benchmark: does an acknowledged job survive a SIGKILL of Redis, per
`appendfsync` policy, and what does the policy cost in adds per second?

The crash trial of tests/broker/test_restart.py, repeated: a fresh engine with an
append-only file (sdq.embedded_redis.EmbeddedRedis, the same binary and flags as
`sdq up` and `sdq cluster`), concurrent adders calling the broker's add_job (what
/addJob does), a SIGKILL at a random moment while adds are in flight, a restart on
the same folder, and a count of the jobs whose add had answered but which the
restarted engine does not hold. Each policy runs quiet and under disk load (another
process appending to a file on the same disk and fsyncing it, as other services'
logs and databases do): `everysec` loses replies it has already sent only when the
kill comes while a background fsync is slow, so its losses follow the disk.

    python -m bench.durability                  # 40 trials per policy and condition
    python -m bench.durability --trials 10 --policies always,no --no-disk-load

Prints one row per policy and condition: trials, trials that lost an acknowledged
job, jobs lost, jobs acknowledged, adds/s (32 concurrent adders, the policies taking
turns, median of 3), and how long a small fsync took in each condition.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import multiprocessing
import multiprocessing.synchronize
import os
import random
import secrets
import shutil
import statistics
import tempfile
import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Literal, cast

from redis.asyncio import Redis

from broker.errors import StorageUnavailable
from broker.queue import Queue
from broker.settings import BrokerSettings
from sdq.embedded_redis import EmbeddedRedis

Policy = Literal["always", "everysec", "no"]
POLICIES: tuple[Policy, ...] = ("always", "everysec", "no")
ADDERS = 32
SETTINGS = BrokerSettings(key_prefix="durability", redis_timeout_s=2.0)
DISK_LOAD_BYTES = 128 * 1024 * 1024  # the load's file never grows past this
DISK_LOAD_BLOCK = 4 * 1024 * 1024


@dataclass
class Row:
    policy: Policy
    condition: str
    trials: int = 0
    trials_lost: int = 0
    jobs_lost: int = 0
    acknowledged: int = 0
    adds_per_s: float = 0.0


def disk_load(path: str, stop: multiprocessing.synchronize.Event) -> None:
    """A heavy writer until `stop`: 4 MiB appends, an fsync every 32 MiB, the file
    deleted and begun again at 128 MiB (fresh blocks: on ext4 an fsync of any
    other file then waits for this data too)."""
    block = os.urandom(DISK_LOAD_BLOCK)
    written = 0
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    try:
        while not stop.is_set():
            os.write(fd, block)
            written += DISK_LOAD_BLOCK
            if written % (8 * DISK_LOAD_BLOCK) == 0:
                os.fsync(fd)
            if written >= DISK_LOAD_BYTES:
                os.close(fd)
                os.unlink(path)
                fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
                written = 0
    finally:
        os.close(fd)


def fsync_ms(folder: Path, samples: int = 40) -> tuple[float, float]:
    """(median, max) ms of an fsync after a 200-byte append: what an AOF fsync waits."""
    probe = folder / "fsync-probe"
    times = []
    with probe.open("ab") as out:
        for _ in range(samples):
            out.write(b"x" * 200)
            out.flush()
            start = time.perf_counter()
            os.fsync(out.fileno())
            times.append((time.perf_counter() - start) * 1000)
            time.sleep(0.02)
    probe.unlink()
    return statistics.median(times), max(times)


@contextlib.contextmanager
def disk_loaded(folder: Path, on: bool) -> Iterator[None]:
    if not on:
        yield
        return
    context = multiprocessing.get_context("spawn")
    stop = context.Event()
    writer = context.Process(target=disk_load, args=(str(folder / "disk-load.bin"), stop))
    writer.start()
    try:
        time.sleep(0.5)  # the page cache fills and the first fsyncs queue
        yield
    finally:
        stop.set()
        writer.join(timeout=30)
        if writer.is_alive():
            writer.kill()
        (folder / "disk-load.bin").unlink(missing_ok=True)


async def add_until_killed(engine: EmbeddedRedis, kill_after_s: float) -> list[str]:
    """Adders call add_job until the engine is SIGKILLed `kill_after_s` in; returns
    the tokens whose add answered (replies read after the kill were sent before it)."""
    redis = Redis.from_url(engine.url, decode_responses=True, socket_timeout=2.0)
    queue = Queue(redis, SETTINGS)
    acknowledged: list[str] = []
    dead = asyncio.Event()

    async def adder() -> None:
        while not dead.is_set():
            token = secrets.token_hex(16)
            try:
                await queue.add_job(token, "durability trial", 1, 576, 576)
            except StorageUnavailable:
                return
            acknowledged.append(token)

    async def killer() -> None:
        await asyncio.sleep(kill_after_s)
        engine.kill()  # blocks the loop for a moment: adds stay in flight on the sockets
        dead.set()

    try:
        await asyncio.gather(killer(), *(adder() for _ in range(ADDERS)))
    finally:
        await redis.aclose()
    return acknowledged


async def missing(engine: EmbeddedRedis, tokens: Sequence[str]) -> int:
    redis = Redis.from_url(engine.url, decode_responses=True)
    keys = Queue(redis, SETTINGS).keys
    try:
        async with redis.pipeline(transaction=False) as pipe:
            for token in tokens:
                pipe.exists(keys.job(token))
            found = cast(list[int], await pipe.execute())
        return sum(1 for present in found if not present)
    finally:
        await redis.aclose()


def trial(folder: Path, policy: Policy, kill_after_s: float) -> tuple[int, int]:
    """One crash: (jobs acknowledged, of them missing after the restart)."""
    engine = EmbeddedRedis(data_dir=folder, appendfsync=policy).start()
    try:
        acknowledged = asyncio.run(add_until_killed(engine, kill_after_s))
        engine = EmbeddedRedis(data_dir=folder, port=engine.port, appendfsync=policy).start(60)
        return len(acknowledged), asyncio.run(missing(engine, acknowledged))
    finally:
        engine.stop()


async def adds_per_second(engine: EmbeddedRedis, seconds: float) -> float:
    redis = Redis.from_url(engine.url, decode_responses=True)
    queue = Queue(redis, SETTINGS)
    done = 0
    deadline = time.monotonic() + seconds

    async def adder() -> None:
        nonlocal done
        while time.monotonic() < deadline:
            await queue.add_job(secrets.token_hex(16), "durability rate", 1, 576, 576)
            done += 1

    try:
        start = time.monotonic()
        await asyncio.gather(*(adder() for _ in range(ADDERS)))
        return done / (time.monotonic() - start)
    finally:
        await redis.aclose()


def crash_trials(row: Row, folder: Path, trials: int, rng: random.Random) -> None:
    for i in range(trials):
        kill_after_s = rng.uniform(0.2, 1.0)
        folder_i = folder / f"{row.policy}-{row.condition}-{i}"
        acknowledged, lost = trial(folder_i, row.policy, kill_after_s)
        shutil.rmtree(folder_i, ignore_errors=True)
        row.trials += 1
        row.acknowledged += acknowledged
        row.jobs_lost += lost
        row.trials_lost += lost > 0


def rates(rows: Sequence[Row], folder: Path, seconds: float, rounds: int) -> None:
    """Adds/s per policy, the policies taking turns `rounds` times (this machine's
    speed drifts: side by side, then the median)."""
    samples: dict[str, list[float]] = {row.policy: [] for row in rows}
    for round_ in range(rounds):
        for row in rows:
            engine = EmbeddedRedis(
                data_dir=folder / f"rate-{row.policy}-{round_}", appendfsync=row.policy
            )
            engine.start()
            try:
                samples[row.policy].append(asyncio.run(adds_per_second(engine, seconds)))
            finally:
                engine.stop()
    for row in rows:
        row.adds_per_s = statistics.median(samples[row.policy])


def table(rows: Sequence[Row], fsyncs: dict[str, tuple[float, float]]) -> str:
    head = (
        "appendfsync",
        "condition",
        "trials",
        "trials losing",
        "jobs lost",
        "acknowledged",
        "adds/s",
    )
    lines = [head] + [
        (
            row.policy,
            row.condition,
            str(row.trials),
            str(row.trials_lost),
            str(row.jobs_lost),
            f"{row.acknowledged:,}",
            f"{row.adds_per_s:,.0f}",
        )
        for row in rows
    ]
    widths = [max(len(line[i]) for line in lines) for i in range(len(head))]
    out = [
        "  "
        + "  ".join(
            cell.ljust(width) if i < 2 else cell.rjust(width)
            for i, (cell, width) in enumerate(zip(line, widths, strict=True))
        )
        for line in lines
    ]
    for condition, (median, worst) in fsyncs.items():
        out.append(
            f"  fsync of a small append, {condition}: median {median:.1f} ms, max {worst:.1f} ms"
        )
    out.append(f"  ({ADDERS} concurrent adders; adds/s is the median of turns taken side by side)")
    return "\n".join(out)


def parse(argv: Sequence[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="python -m bench.durability",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--trials", type=int, default=40, help="SIGKILLs per policy and condition")
    parser.add_argument("--policies", default=",".join(POLICIES), help="comma-separated")
    parser.add_argument(
        "--disk-load",
        action=argparse.BooleanOptionalAction,
        default=True,
        help="also run each policy while another process fsyncs a file on the same disk",
    )
    parser.add_argument("--rate-seconds", type=float, default=1.0, help="length of one adds/s turn")
    parser.add_argument("--rate-rounds", type=int, default=3, help="adds/s turns per policy")
    parser.add_argument("--seed", type=int, default=11, help="kill moments")
    parser.add_argument(
        "--data-dir", type=Path, help="on the disk to measure (default: a temp dir)"
    )
    return parser.parse_args(argv)


def main(argv: Sequence[str] | None = None) -> int:
    args = parse(argv)
    policies = [cast(Policy, name.strip()) for name in args.policies.split(",") if name.strip()]
    unknown = set(policies) - set(POLICIES)
    if unknown:
        raise SystemExit(f"unknown policies: {sorted(unknown)}")
    conditions = ["quiet", "disk load"] if args.disk_load else ["quiet"]
    rows: list[Row] = []
    fsyncs: dict[str, tuple[float, float]] = {}
    with tempfile.TemporaryDirectory(prefix="sdq-durability-", dir=args.data_dir) as tmp:
        folder = Path(tmp)
        for condition in conditions:
            with disk_loaded(folder, condition == "disk load"):
                fsyncs[condition] = fsync_ms(folder)
                mine = [Row(policy, condition) for policy in policies]
                for row in mine:
                    crash_trials(
                        row, folder, args.trials, random.Random(f"{args.seed}-{row.policy}")
                    )
                    print(f"  crash trials done: {row.policy}, {condition}", flush=True)
                rates(mine, folder, args.rate_seconds, args.rate_rounds)
                rows += mine
    print(table(rows, fsyncs))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
