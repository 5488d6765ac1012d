"""Small helpers of the broker tests: tokens, tuned queues, the server clock, polling,
and the invariant that ties the job hashes to the ordered sets."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable
from typing import Any, TypeVar, cast

from redis.asyncio import Redis

from broker.queue import Queue
from broker.states import JobState

T = TypeVar("T")

SIZE = (576, 576)
TERMINAL = {JobState.COMPLETE.value, JobState.FAILED.value, JobState.CANCELLED.value}


def token(i: int) -> str:
    return f"{i:032x}"


def tuned(queue: Queue, **changes: Any) -> Queue:
    """A queue on the same Redis with some settings changed (same prefix unless changed)."""
    return Queue(queue.redis, queue.settings.model_copy(update=changes))


async def add(
    queue: Queue,
    i: int,
    created_ms: int | None = None,
    number: int = 1,
    size: tuple[int, int] = SIZE,
) -> str:
    """Adds job number i (prompt 'job i') and returns its token."""
    await queue.add_job(token(i), f"job {i}", number, size[0], size[1], created_ms)
    return token(i)


async def server_ms(redis: Redis) -> int:
    """The Redis server's clock, in ms, as the scripts read it."""
    seconds, micros = await redis.time()
    return int(seconds) * 1000 + int(micros) // 1000


async def eventually(
    probe: Callable[[], Awaitable[T | None]], timeout_s: float = 5.0, interval_s: float = 0.01
) -> T:
    """Calls probe until it returns something truthy; fails after timeout_s.

    Used instead of fixed sleeps: a lease of 50 ms is waited for as long as a
    noisy machine needs, but never forever."""
    deadline = time.monotonic() + timeout_s
    while True:
        result = await probe()
        if result:
            return result
        if time.monotonic() > deadline:
            raise AssertionError(f"condition not met within {timeout_s} s (last: {result!r})")
        await asyncio.sleep(interval_s)


async def wait_past(redis: Redis, instant_ms: int) -> None:
    """Returns once the server's clock is past instant_ms."""

    async def passed() -> bool:
        return await server_ms(redis) > instant_ms

    await eventually(passed)


async def drain(queue: Queue) -> list[str]:
    """Claims every claimable job, oldest first; returns their tokens."""
    tokens = []
    while (claim := await queue.claim("drain", lease_ms=60_000)) is not None:
        tokens.append(claim.job.token)
    return tokens


async def job_hashes(queue: Queue) -> dict[str, dict[str, str]]:
    """Every job hash of this queue, by token."""
    redis, prefix = queue.redis, queue.keys.job_prefix
    hashes: dict[str, dict[str, str]] = {}
    async for key in redis.scan_iter(match=_glob_escape(prefix) + "*", count=1000):
        if job := await redis.hgetall(key):  # {}: expired since the SCAN saw it
            hashes[key.removeprefix(prefix)] = cast(dict[str, str], job)
    return hashes


async def scores(redis: Redis, key: str) -> dict[str, float]:
    """An ordered set as member -> score."""
    return dict(cast(list[tuple[str, float]], await redis.zrange(key, 0, -1, withscores=True)))


def _glob_escape(text: str) -> str:
    return "".join("\\" + ch if ch in "*?[]\\" else ch for ch in text)


async def check_indexes(queue: Queue) -> None:
    """Asserts that the ordered sets and the job hashes agree, both ways:

    waiting = new, not reserved, queued FIFO (score created_ms); fair = the same,
    queued fairly (score its start tag); reserved = new; active = new or pending;
    leases = running = pending; {p}:open holds a record of each open job; a
    terminal job is in no ordered set and has a TTL; the client sums match."""
    k, redis = queue.keys, queue.redis
    jobs = await job_hashes(queue)
    waiting, active = await scores(redis, k.waiting), await scores(redis, k.active)
    fair, running = await scores(redis, k.fair), await scores(redis, k.running)
    reserved, leases = set(await scores(redis, k.reserved)), set(await scores(redis, k.leases))
    records = cast(dict[str, str], await redis.hgetall(k.open))
    partial = {t: job for t, job in jobs.items() if "member" not in job}
    assert not partial, f"job hashes without a member: {partial}"
    by_member = {job["member"]: t for t, job in jobs.items()}
    for name, members in (("waiting", waiting), ("fair", fair), ("active", active)):
        for member, score in members.items():
            assert member in by_member, f"{name} keeps {member}, whose job is gone"
            job = jobs[by_member[member]]
            expected = float(job["vstart"]) if name == "fair" else int(job["created_ms"])
            assert score == expected, f"{name} score"
    for name, tokens in (("reserved", reserved), ("leases", leases), ("open", set(records))):
        gone = tokens - jobs.keys()
        assert not gone, f"{name} keeps {gone}, whose jobs are gone"
    images: dict[str, int] = {}
    for t, job in jobs.items():
        state, member, is_fair = job["state"], job["member"], "vstart" in job
        queued = state == "new" and t not in reserved
        expected = {
            "waiting": queued and not is_fair,
            "fair": queued and is_fair,
            "active": state in ("new", "pending"),
            "reserved": state == "new" and t in reserved,
            "leases": state == "pending",
            "running": state == "pending",
            "open": state in ("new", "pending"),
        }
        actual = {
            "waiting": member in waiting,
            "fair": member in fair,
            "active": member in active,
            "reserved": t in reserved,
            "leases": t in leases,
            "running": t in running,
            "open": t in records,
        }
        assert actual == expected, f"job {t} in state {state}: indexes {actual}"
        if state == "pending":
            assert running[t] == int(job["started_ms"]), f"running score of {t}"
        if t in records:
            resolution = f"{job['width']}x{job['height']}"
            client = job.get("client", "-")
            assert records[t] == f"{member} {job['number']} {resolution} {client}", t
        if "client" in job:
            images[job["client"]] = images.get(job["client"], 0) + int(job["number"])
        if state in TERMINAL:
            # -2: it expired since it was read, which is fine; -1 would be a leak
            assert await redis.pttl(k.job(t)) != -1, f"terminal job {t} has no TTL"
    clients = {c: int(n) for c, n in (await scores(redis, k.clients)).items() if int(n)}
    assert clients == images, "open images per client"


async def brute_force_sums(queue: Queue) -> dict[str, int]:
    """Images of unfinished jobs per state and per state:resolution, job by job: what
    the running sums of {p}:images must equal (zero fields left out)."""
    sums: dict[str, int] = {}
    for job in (await job_hashes(queue)).values():
        state = job["state"]
        if state in ("new", "pending"):
            for field in (state, f"{state}:{job['width']}x{job['height']}"):
                sums[field] = sums.get(field, 0) + int(job["number"])
    return sums


async def check_sums(queue: Queue) -> None:
    """The running sums equal a count job by job (once they are counted)."""
    stored = cast(dict[str, str], await queue.redis.hgetall(queue.keys.images))
    assert "resolutions" in stored, "the sums are marked to be counted again"
    kept = {name: int(n) for name, n in stored.items() if name != "resolutions" and int(n)}
    assert kept == await brute_force_sums(queue)
