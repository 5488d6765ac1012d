"""The worker's benchmark commands end to end at a tiny size: bench.busy (one worker under
a backlog, both transports, pipelining on and off) and bench.gpu --tiny (the SD 1.5
timing command on the CPU). No figure is asserted beyond its range: the machine is
shared; only that every part ran and reported."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

pytestmark = pytest.mark.slow

REPO = Path(__file__).resolve().parents[2]


def run(*args: str, timeout_s: float = 300) -> list[str]:
    done = subprocess.run(
        [sys.executable, "-m", *args], cwd=REPO, capture_output=True, text=True, timeout=timeout_s
    )
    assert done.returncode == 0, done.stderr[-3000:]
    return done.stdout.splitlines()


def test_bench_busy_reports_both_transports_with_pipelining_on_and_off() -> None:
    lines = run(
        "bench.busy", "--jobs", "3", "--images", "2", "--batch-size", "2", "--ms", "40",
        "--steps", "4", "--s3-latency-ms", "2",
    )  # fmt: skip

    rows = [line.split() for line in lines if line.startswith(("redis", "http"))]
    assert [(row[0], row[1]) for row in rows] == [
        ("redis", "off"), ("redis", "on"), ("http", "off"), ("http", "on"),
    ]  # fmt: skip
    for row in rows:
        busy, rate, ideal = float(row[2]), float(row[3]), float(row[4])
        assert 0 < busy <= 1 and 0 < rate <= ideal * 1.05


def test_bench_gpu_tiny_times_eager_and_compiled_on_the_cpu() -> None:
    lines = run(
        "bench.gpu", "--tiny", "--steps", "2", "--sizes", "576x576", "--batches", "1,2",
        "--repeat", "1",
    )  # fmt: skip

    rows = [line.split() for line in lines if line.startswith(("eager ", "compiled "))]
    assert [(row[0], row[1], row[2]) for row in rows] == [
        ("eager", "576x576", "1"), ("eager", "576x576", "2"),
        ("compiled", "576x576", "1"), ("compiled", "576x576", "2"),
    ]  # fmt: skip
    assert all(float(row[3]) > 0 for row in rows)
    assert any("compiled: warm-up of every shape" in line for line in lines)
