"""The accounting of `sdq chaos`: what happened to every acknowledged job, read
back from Redis, the workers' logs and the image folder, and the one table it prints.

- lost: a job whose /addJob answered 200 with a token, and that Redis does not
  hold (or holds with another prompt), or that ended `failed`/`cancelled`.
- stuck: still `new` or `pending` when the drain gave up.
- duplicated: completed more than once (the workers' "job <token>: complete" log
  lines, and Redis's own completion counter against the jobs it holds as
  complete), or stored twice by one /addJob (two jobs with one prompt).
- rendered again: claimed more than once (fence > 1), which a SIGKILLed worker or
  an expired lease causes by design (at-least-once rendering); an image written
  after its job was already complete is counted apart (a stale renderer).
"""

from __future__ import annotations

import bisect
import re
import statistics
from collections import Counter
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import cast

from redis.asyncio import Redis

from broker.images import image_key
from broker.keys import QueueKeys
from sdq.chaos_users import Users

OPEN = ("new", "pending")
FAULT_WINDOW_GRACE_S = 3.0  # after a restart, a failure still counts as the fault's
# An image file's time against the job's finished_ms (Redis TIME, whole ms, the
# same clock): a renderer that stores every image before completing stays within
# a millisecond; a stale one that wrote after another worker's completion, later.
LATE_IMAGE_MS = 50
_COMPLETE_LINE = re.compile(r"job ([0-9a-f]{8}): complete$")


@dataclass
class Fault:
    """One SIGKILL (or fault command) and the restart after it; times from time.time()."""

    kind: str  # worker, replica, redis, or the name of a --fault-cmd
    target: str  # e.g. worker-1
    killed_at: float
    restarted_at: float | None = None
    held: list[str] = field(default_factory=list)  # tokens a killed worker was rendering
    error: str = ""  # a restart that failed


@dataclass
class Observed:
    """What Redis, the logs and the image folder hold at the end of the run."""

    jobs: dict[str, dict[str, str]]  # token -> job hash, for every job of the run
    log_completions: Counter[str] | None  # 8-hex token prefix -> "complete" lines
    completed_counter: int | None  # growth of Redis's completion counter during the run
    images_dir: Path | None
    drain_s: float


@dataclass
class Summary:
    rows: list[tuple[str, str]]
    lost: int
    stuck: int
    duplicated: int

    @property
    def ok(self) -> bool:
        return self.lost == 0 and self.stuck == 0 and self.duplicated == 0


async def read_jobs(redis: Redis, keys: QueueKeys, run_prompt: str) -> dict[str, dict[str, str]]:
    """Every job whose prompt starts with `run_prompt` (this run's), by token."""
    found: dict[str, dict[str, str]] = {}
    async for key in redis.scan_iter(match=keys.job_prefix + "*", count=1000):
        job = cast(dict[str, str], await redis.hgetall(key))
        if job.get("prompt", "").startswith(run_prompt):
            found[str(key).removeprefix(keys.job_prefix)] = job
    return found


async def completed_counter(redis: Redis, keys: QueueKeys) -> int:
    return int(await redis.hget(keys.stats, "complete") or 0)


def log_completions(logs: Iterable[Path], offsets: Mapping[Path, int]) -> Counter[str]:
    """ "complete" lines per token prefix in the workers' logs, from `offsets` on."""
    found: Counter[str] = Counter()
    for log in logs:
        if not log.exists():
            continue
        with log.open("rb") as lines:
            lines.seek(offsets.get(log, 0))
            for raw in lines:
                match = _COMPLETE_LINE.search(raw.decode("utf-8", "replace").rstrip())
                if match:
                    found[match.group(1)] += 1
    return found


def _seconds(values: Sequence[float]) -> str:
    if not values:
        return "-"
    return f"{statistics.median(values):.2f} / {max(values):.2f} s"


def _first_after(times: Sequence[float], moment: float) -> float | None:
    i = bisect.bisect_right(times, moment)
    return times[i] - moment if i < len(times) else None


def recovery_rows(
    faults: Sequence[Fault], ok_times: Sequence[float], completions: Sequence[float],
    finished: Mapping[str, float],
) -> list[tuple[str, str]]:  # fmt: skip
    """Per fault kind: from the kill to the first 200, to the next completed job, and
    (worker kills) to the completion of the jobs the victim held; median / max."""
    rows = []
    for kind in sorted({fault.kind for fault in faults}):
        mine = [fault for fault in faults if fault.kind == kind]
        first_ok = [d for f in mine if (d := _first_after(ok_times, f.killed_at)) is not None]
        first_done = [d for f in mine if (d := _first_after(completions, f.killed_at)) is not None]
        value = f"first 200 {_seconds(first_ok)}, next job done {_seconds(first_done)}"
        held = [finished[t] - f.killed_at for f in mine for t in f.held if t in finished]
        if any(f.held for f in mine):
            value += f", victim's job done {_seconds(held)}"
        rows.append((f"recovery after {kind} kill ({len(mine)}), median / max", value))
    return rows


def in_a_fault(moment: float, faults: Sequence[Fault]) -> bool:
    return any(
        f.killed_at <= moment <= (f.restarted_at or f.killed_at) + FAULT_WINDOW_GRACE_S
        for f in faults
    )


def image_checks(
    jobs: Mapping[str, dict[str, str]], complete: Iterable[str], folder: Path
) -> tuple[int, int]:
    """(images a complete job lacks, images written after their job completed)."""
    missing = late = 0
    for token in complete:
        job = jobs[token]
        done_ms = int(job.get("finished_ms") or 0)
        for index in range(int(job.get("number") or 0)):
            path = folder / image_key(token, index)
            try:
                written_ms = path.stat().st_mtime_ns / 1e6
            except FileNotFoundError:
                missing += 1
                continue
            late += written_ms > done_ms + LATE_IMAGE_MS
    return missing, late


def summarize(users: Users, faults: Sequence[Fault], seen: Observed) -> Summary:
    acked = {job.token: job for job in users.acknowledged}
    jobs = seen.jobs
    unknown = [t for t, a in acked.items() if t not in jobs or jobs[t].get("prompt") != a.prompt]
    state = {t: jobs[t]["state"] for t in acked if t not in unknown}
    ended_badly = [t for t, s in state.items() if s not in (*OPEN, "complete")]
    stuck = [t for t, s in state.items() if s in OPEN]
    complete = [t for t, s in state.items() if s == "complete"]
    prompts = Counter(job.get("prompt") for job in jobs.values())
    stored_twice = sum(n - 1 for n in prompts.values() if n > 1)
    unanswered = len(set(jobs) - set(acked))

    if seen.log_completions is not None:
        per_token = Counter({t: seen.log_completions.get(t[:8], 0) for t in complete})
        twice_in_logs = sum(1 for n in per_token.values() if n > 1)
        in_logs = str(sum(per_token.values()))
    else:
        twice_in_logs, in_logs = 0, "n/a"
    all_complete = sum(1 for job in jobs.values() if job.get("state") == "complete")
    counted = seen.completed_counter
    twice_in_redis = max(0, counted - all_complete) if counted is not None else 0
    duplicated = max(twice_in_logs, twice_in_redis) + stored_twice  # two views of one count

    fences = [int(jobs[t].get("fence") or 0) for t in complete]
    again = [f for f in fences if f > 1]
    rendered_again = f"{len(again)} jobs, {sum(again) - len(again)} more claims"
    finished = {t: int(jobs[t]["finished_ms"]) / 1000 for t in complete}
    outside = sum(1 for moment in users.failure_times if not in_a_fault(moment, faults))
    kinds = Counter(fault.kind for fault in faults)

    rows = [
        ("faults injected", f"{len(faults)} ({_counts(kinds)})" if faults else "0"),
        ("jobs acknowledged (/addJob 200 + token)", str(len(acked))),
        ("completed", str(len(complete))),
        ("lost (acknowledged, then unknown or failed)", str(len(unknown) + len(ended_badly))),
        ("  unknown to Redis", str(len(unknown))),
        ("  ended failed or cancelled", str(len(ended_badly))),
        ("stuck (not finished after the drain)", str(len(stuck))),
        ("duplicated (completed twice, stored twice)", str(duplicated)),
        ("  completed twice, workers' logs", str(twice_in_logs) if in_logs != "n/a" else "n/a"),
        ("  completed twice, Redis counter", str(twice_in_redis) if counted is not None else "n/a"),
        ("  stored twice by one /addJob", str(stored_twice)),
        ("completions: workers' logs / Redis", f"{in_logs} / {len(complete)}"),
        ("rendered again after a fault (fence > 1)", rendered_again),
        ("stored, but /addJob got no 200", str(unanswered)),
    ]  # fmt: skip
    if seen.images_dir is not None:
        missing, late = image_checks(jobs, complete, seen.images_dir)
        rows.append(("images missing from complete jobs", str(missing)))
        rows.append(("images written after their job completed", str(late)))
    rows.append(("drain after the load", f"{seen.drain_s:.1f} s"))
    failed = sum(users.failures.values())
    rows.append(
        (
            "requests / failed (outside a fault)",
            f"{sum(users.requests.values())} / {failed} ({outside})",
        )
    )
    for (path, status), n in sorted(users.failures.items()):
        rows.append((f"  failed {path} {status}", str(n)))
    completions = sorted(finished.values())
    rows += recovery_rows(faults, sorted(users.ok_times), completions, finished)
    return Summary(rows, len(unknown) + len(ended_badly), len(stuck), duplicated)


def _counts(counter: Counter[str]) -> str:
    return ", ".join(f"{kind} {n}" for kind, n in sorted(counter.items()))


def table(title: str, summary: Summary) -> str:
    width = max(len(name) for name, _ in summary.rows)
    lines = [title] + [f"  {name:<{width}}  {value}" for name, value in summary.rows]
    verdict = "PASS: every acknowledged job completed, once" if summary.ok else "FAIL"
    return "\n".join([*lines, f"  {verdict}"])
