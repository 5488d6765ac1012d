"""`sdq chaos`: its accounting on hand-made outcomes (a lost, a stuck and a
twice-completed job are each caught), and one short real run against a cluster of
its own with every kind of fault, which must lose no acknowledged job."""

from __future__ import annotations

import os
import random
import re
import subprocess
import sys
from collections import Counter
from pathlib import Path

import pytest

from sdq.chaos_report import Fault, Observed, log_completions, summarize, table
from sdq.chaos_users import Acknowledged, Users
from sdq.cli import _parser
from sdq.cluster import find_nginx

ROOT = Path(__file__).resolve().parents[2]


def token(i: int) -> str:
    return f"{i:08x}" + "ab" * 12


def users_with(*tokens: str) -> Users:
    users = Users("http://lb", "run1", random.Random(1))
    users.acknowledged = [Acknowledged(t, f"chaos run1 tab 0 job {t}", 1, 100.0) for t in tokens]
    return users


def job(
    t: str, state: str = "complete", fence: int = 1, finished_ms: int = 105_000
) -> dict[str, str]:
    return {
        "prompt": f"chaos run1 tab 0 job {t}",
        "state": state,
        "fence": str(fence),
        "number": "1",
        "finished_ms": str(finished_ms),
    }


def figures(printed: str) -> dict[str, str]:
    return {
        m.group(1).strip(): m.group(2).strip()
        for m in re.finditer(r"^ {2,}(\S.*?) {2,}(\S.*)$", printed, re.MULTILINE)
    }


def test_chaos_report_counts_lost_stuck_and_duplicated_jobs() -> None:
    a, b, c, d, e = (token(i) for i in range(5))
    users = users_with(a, b, c, d, e)
    jobs = {a: job(a), b: job(b, fence=2), c: job(c, "pending"), d: job(d, "failed")}
    # e: Redis holds no job of this run under that token
    completions = Counter({a[:8]: 2, b[:8]: 1})
    seen = Observed(jobs, completions, completed_counter=3, images_dir=None, drain_s=1.0)
    summary = summarize(users, [Fault("worker", "worker-0", 101.0, 102.0, held=[b])], seen)

    shown = figures(table("title", summary))
    assert (summary.lost, summary.stuck, summary.duplicated) == (2, 1, 1)
    assert shown["jobs acknowledged (/addJob 200 + token)"] == "5"
    assert shown["unknown to Redis"] == "1"
    assert shown["ended failed or cancelled"] == "1"
    assert shown["completed twice, workers' logs"] == "1"
    assert shown["completed twice, Redis counter"] == "1"  # 3 counted, 2 complete
    assert shown["rendered again after a fault (fence > 1)"] == "1 jobs, 1 more claims"
    assert shown["recovery after worker kill (1), median / max"].endswith(
        "victim's job done 4.00 / 4.00 s"
    )
    assert not summary.ok and table("t", summary).endswith("FAIL")


def test_chaos_report_a_clean_run_passes_and_times_recovery() -> None:
    a, b = token(1), token(2)
    users = users_with(a, b)
    users.ok_times = [100.5, 103.5]
    users.failures = Counter({("/getJobStatus", "500"): 2, ("/addJob", "ConnectError"): 1})
    users.failure_times = [102.1, 102.2, 120.0]
    seen = Observed({a: job(a), b: job(b, finished_ms=104_000)}, None, None, None, 2.0)
    summary = summarize(users, [Fault("redis", "redis-0", 102.0, 103.0)], seen)

    shown = figures(table("title", summary))
    assert summary.ok
    assert shown["requests / failed (outside a fault)"] == "0 / 3 (1)"
    assert shown["failed /getJobStatus 500"] == "2"
    assert shown["completed twice, workers' logs"] == "n/a"
    assert shown["recovery after redis kill (1), median / max"] == (
        "first 200 1.50 / 1.50 s, next job done 2.00 / 2.00 s"
    )


def test_chaos_report_reads_completions_written_after_the_start(tmp_path: Path) -> None:
    log = tmp_path / "worker-0.log"
    log.write_text("x INFO gpu_worker.worker: job 0000000a: complete\n", encoding="utf-8")
    offsets = {log: log.stat().st_size, tmp_path / "worker-1.log": 0}  # worker-1 never wrote
    with log.open("a", encoding="utf-8") as out:
        out.write("x INFO gpu_worker.worker: job 0000000b: complete\n")
        out.write("x WARNING gpu_worker.worker: job 0000000c: not completed yet (down)\n")
    assert log_completions(offsets, offsets) == Counter({"0000000b": 1})


def test_chaos_command_options_and_attach_needs_redis(capsys: pytest.CaptureFixture[str]) -> None:
    args = _parser().parse_args(["chaos", "--duration", "5", "--interval", "3", "1"])
    assert (args.duration, args.interval, args.faults) == (5.0, [3.0, 1.0], "worker,replica,redis")
    attach = _parser().parse_args(["chaos", "--attach", "http://127.0.0.1:9"])
    assert attach.run(attach) == 2
    assert "--attach needs --redis-url" in capsys.readouterr().err


@pytest.mark.slow
def test_chaos_short_run_loses_no_acknowledged_job(tmp_path: Path) -> None:
    if find_nginx() is None:
        pytest.skip("nginx is not installed (scripts/test installs it: apt-get install nginx)")
    args = [
        "--duration",
        "12",
        "--users",
        "6",
        "--replicas",
        "2",
        "--workers",
        "2",
        "--render-ms",
        "200",
        "--interval",
        "1",
        "2",
        "--pause",
        "0.5",
        "--seed",
        "8",
        "--drain",
        "30",
        "--data-dir",
        str(tmp_path),
    ]  # fmt: skip  (seed 8: the first three faults are a replica, a worker, Redis)
    env = {**os.environ, "PYTHONPATH": str(ROOT), "PATH": f"/usr/sbin:{os.environ['PATH']}"}
    result = subprocess.run(
        [sys.executable, "-m", "sdq.cli", "chaos", *args],
        capture_output=True, text=True, timeout=120, env=env, check=False,
    )  # fmt: skip
    print(result.stdout[-3000:], result.stderr[-2000:])
    shown = figures(result.stdout)
    acknowledged = int(shown["jobs acknowledged (/addJob 200 + token)"])
    faults = shown["faults injected"]
    assert result.returncode == 0, result.stdout[-2000:]
    assert acknowledged >= 10
    assert int(shown["lost (acknowledged, then unknown or failed)"]) == 0
    assert int(shown["stuck (not finished after the drain)"]) == 0
    assert int(shown["duplicated (completed twice, stored twice)"]) == 0
    assert int(shown["completed"]) == acknowledged
    assert all(kind in faults for kind in ("worker", "replica", "redis")), faults
    assert re.fullmatch(r"\d+ / \d+ \(\d+\)", shown["requests / failed (outside a fault)"])
    for kind in ("worker", "replica", "redis"):
        row = next(
            value for name, value in shown.items() if name.startswith(f"recovery after {kind}")
        )
        assert re.match(r"first 200 \d+\.\d\d / \d+\.\d\d s, next job done", row), row
