"""`python -m bench.http`: the legacy endpoints through the real HTTP stack, vs the ceiling.

Starts its own Redis engine (no persistence), a fake hCaptcha that answers in
one write, the app (`uvicorn --factory api.app:create_app`) and the ceiling
(bench/ceiling.py: one EVALSHA per request, bare ASGI), both with 2 workers,
uvloop and httptools, access log off. For each depth it fills the queue, then
alternates wrk runs (ceiling, endpoint, ceiling, endpoint, ...) and reports
medians; each endpoint's ratio is the median of its paired ratios, so noise
from other processes on the machine hits both sides of a ratio alike.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field

from pydantic import SecretStr
from redis import Redis

from bench.fill import fill, poll_tokens
from bench.servers import Uvicorn
from bench.wrk import Load, WrkResult, require_wrk, run_wrk
from broker.settings import BrokerSettings
from sdq.doubles.fake_hcaptcha import FakeHCaptcha
from sdq.embedded_redis import EmbeddedRedis

SECRET = "bench-backend-secret-of-bench-http"
PREFIX = "bench"
ENDPOINTS = ("getJobStatus", "getNextJob", "addJob")
# The original Go + SQLite service on this machine (issue 2): req/s by depth.
ORIGINAL_RPS: dict[tuple[str, int], float] = {
    ("getJobStatus", 0): 3_216,
    ("getJobStatus", 100_000): 69.6,
    ("getNextJob", 0): 3_522,
    ("getNextJob", 100_000): 176,
}
ORIGINAL_ADD_JOB_RPS = 730.0  # at any depth; p99 1.1 s at 32 connections


@dataclass
class Options:
    depths: list[int]
    load: Load
    repeat: int
    reservation_ms: int
    endpoints: list[str]


@dataclass
class Row:
    depth: int
    endpoint: str
    runs: list[WrkResult] = field(default_factory=list)
    ceilings: list[WrkResult] = field(default_factory=list)
    cpu_us: list[float] = field(default_factory=list)  # server CPU per answered request
    ceiling_cpu_us: list[float] = field(default_factory=list)

    @property
    def rps(self) -> float:
        return statistics.median(run.rps for run in self.runs)

    @property
    def p50_ms(self) -> float:
        return statistics.median(run.p50_ms for run in self.runs)

    @property
    def p99_ms(self) -> float:
        return statistics.median(run.p99_ms for run in self.runs)

    @property
    def ceiling_rps(self) -> float:
        return statistics.median(run.rps for run in self.ceilings)

    @property
    def ratio(self) -> float:
        return statistics.median(
            run.rps / ceiling.rps for run, ceiling in zip(self.runs, self.ceilings, strict=True)
        )

    @property
    def cpu_ratio(self) -> float:
        """Ceiling CPU per request / ours: a noise-robust twin of `ratio`."""
        ours, ceiling = statistics.median(self.cpu_us), statistics.median(self.ceiling_cpu_us)
        return ceiling / ours if ours else 0.0

    @property
    def non_2xx(self) -> int:
        return sum(run.non_2xx for run in self.runs)

    @property
    def answered(self) -> int:
        return sum(run.requests for run in self.runs)


def paths_for(endpoint: str, tokens: list[str]) -> list[str]:
    if endpoint == "getJobStatus":
        return [f"/getJobStatus?token={token}" for token in tokens]
    if endpoint == "getNextJob":
        return [f"/getNextJob?secret={SECRET}"]
    if endpoint == "addJob":
        return [
            f"/addJob?prompt=a+bench+prompt+{i}&number={1 + i % 4}"
            f"&resolution=768x576&captcha=good-bench-{i}"
            for i in range(64)
        ]
    raise ValueError(f"unknown endpoint {endpoint!r}")


@contextmanager
def stack(reservation_ms: int) -> Iterator[tuple[Redis, BrokerSettings, Uvicorn, Uvicorn]]:
    """Redis, fake hCaptcha, the app and the ceiling; all stopped on the way out."""
    engine = EmbeddedRedis().start()
    captcha = FakeHCaptcha().start()
    settings = BrokerSettings(
        redis_url=SecretStr(engine.url),
        key_prefix=PREFIX,
        reservation_ms=reservation_ms,
        lease_base_ms=86_400_000,  # filled pending jobs stay pending for the whole run
    )
    env = {
        "SDQ_REDIS_URL": engine.url,
        "SDQ_KEY_PREFIX": PREFIX,
        "SDQ_BACKEND_SECRETS": SECRET,
        "SDQ_HCAPTCHA_SECRET": "bench-hcaptcha-secret-of-the-benchmarks",
        "SDQ_HCAPTCHA_VERIFY_URL": captcha.url,
        "SDQ_ACCESS_LOG": "false",
        "SDQ_RESERVATION_MS": str(reservation_ms),
        "SDQ_LEASE_BASE_MS": str(settings.lease_base_ms),
    }
    app = Uvicorn("api.app:create_app", env, ready_path="/healthz")
    ceiling = Uvicorn("bench.ceiling:create_app", {"SDQ_REDIS_URL": engine.url})
    redis = Redis.from_url(engine.url)
    try:
        app.start()
        ceiling.start()
        yield redis, settings, app, ceiling
    finally:
        redis.close()
        ceiling.stop()
        app.stop()
        captcha.stop()
        engine.stop()


def measure(options: Options, log: bool = True) -> list[Row]:
    require_wrk()
    rows: list[Row] = []
    warmup = Load(options.load.threads, options.load.connections, 1)
    with stack(options.reservation_ms) as (redis, settings, app, ceiling):
        for depth in options.depths:
            redis.flushdb()
            redis.set("{bench-ceiling}:value", "ceiling")
            started = time.monotonic()
            filled = fill(settings, depth)
            if log:
                print(
                    f"depth {depth:,}: filled in {time.monotonic() - started:.1f} s "
                    f"{filled.states}",
                    file=sys.stderr,
                )
            tokens = poll_tokens(filled)
            run_wrk(ceiling.url, ["/"], warmup)
            run_wrk(app.url, paths_for("getJobStatus", tokens), warmup)
            # addJob comes last: it grows the queue the other endpoints are measured at.
            for endpoint in [e for e in ENDPOINTS if e in options.endpoints]:
                row = Row(depth, endpoint)
                for _ in range(options.repeat):
                    result, cpu = _timed(ceiling, ["/"], options.load)
                    row.ceilings.append(result)
                    row.ceiling_cpu_us.append(cpu)
                    result, cpu = _timed(app, paths_for(endpoint, tokens), options.load)
                    row.runs.append(result)
                    row.cpu_us.append(cpu)
                if log:
                    print(f"  {endpoint}: {row.rps:,.0f} req/s, x{row.ratio:.2f}", file=sys.stderr)
                rows.append(row)
    return rows


def _timed(server: Uvicorn, paths: list[str], load: Load) -> tuple[WrkResult, float]:
    """One wrk run, and the server's CPU microseconds per answered request."""
    before = server.cpu_seconds()
    result = run_wrk(server.url, paths, load)
    used = server.cpu_seconds() - before
    return result, 1e6 * used / max(1, result.requests)


def original(row: Row) -> str:
    if row.endpoint == "addJob":
        return f"{ORIGINAL_ADD_JOB_RPS:,.0f}"
    figure = ORIGINAL_RPS.get((row.endpoint, row.depth))
    return "-" if figure is None else f"{figure:,.1f}" if figure < 100 else f"{figure:,.0f}"


def table(rows: Sequence[Row]) -> str:
    head = (
        f"{'depth':>7}  {'endpoint':<12} {'req/s':>8} {'p50 ms':>7} {'p99 ms':>7} "
        f"{'non-2xx':>8} {'ceiling':>8} {'ratio':>6} {'cpu us':>7} {'cpu r':>6} "
        f"{'original':>9} {'x orig':>7}"
    )
    lines = [head, "-" * len(head)]
    for row in rows:
        orig = original(row)
        versus = "-" if orig == "-" else f"{row.rps / float(orig.replace(',', '')):.1f}"
        lines.append(
            f"{row.depth:>7,}  {row.endpoint:<12} {row.rps:>8,.0f} {row.p50_ms:>7.2f} "
            f"{row.p99_ms:>7.2f} {_share(row):>8} {row.ceiling_rps:>8,.0f} "
            f"{row.ratio:>6.2f} {statistics.median(row.cpu_us):>7.0f} {row.cpu_ratio:>6.2f} "
            f"{orig:>9} {versus:>7}"
        )
    return "\n".join(lines)


def _share(row: Row) -> str:
    if row.non_2xx == 0:
        return "0"
    return f"{100 * row.non_2xx / max(1, row.answered):.0f}%"


def verdicts(rows: Sequence[Row]) -> list[str]:
    """The issue's targets, each with its figure and PASS/FAIL."""
    found: list[str] = []
    status = {row.depth: row for row in rows if row.endpoint == "getJobStatus"}
    for depth, row in status.items():
        found.append(_verdict(f"getJobStatus >= 0.6x ceiling at {depth:,}", row.ratio, 0.6))
    if 0 in status and 100_000 in status:
        scale = status[100_000].ratio / status[0].ratio
        found.append(_verdict("getJobStatus at 100,000 >= 0.9x at 0 (ratios)", scale, 0.9))
    for row in rows:
        if row.endpoint == "addJob":
            found.append(
                _verdict(f"addJob >= 4x 730 req/s at {row.depth:,}", row.rps / 730, 4.0)
                + f"; p99 {row.p99_ms:.1f} ms {'PASS' if row.p99_ms < 50 else 'FAIL'} (< 50)"
            )
    return found


def _verdict(name: str, value: float, target: float) -> str:
    return f"{name}: {value:.2f} {'PASS' if value >= target else 'FAIL'}"


def parse_args(argv: Sequence[str] | None) -> Options:
    parser = argparse.ArgumentParser(prog="python -m bench.http", description=__doc__)
    parser.add_argument("--duration", type=int, default=5, help="seconds per wrk run")
    parser.add_argument("--repeat", type=int, default=3, help="runs per figure (median)")
    parser.add_argument("--depths", default="0,10000,100000", help="stored jobs, comma-separated")
    parser.add_argument("--threads", type=int, default=2, help="wrk -t")
    parser.add_argument("--connections", type=int, default=32, help="wrk -c")
    parser.add_argument("--endpoints", default=",".join(ENDPOINTS), help="comma-separated")
    parser.add_argument(
        "--reservation-ms",
        type=int,
        default=0,
        help="SDQ_RESERVATION_MS of the app; 0 = the original's pure peek, so every "
        "getNextJob on a non-empty queue answers a job",
    )
    args = parser.parse_args(argv)
    endpoints = [name for name in args.endpoints.split(",") if name]
    unknown = set(endpoints) - set(ENDPOINTS)
    if unknown or args.repeat < 1 or args.duration <= 0:
        parser.error(f"bad --endpoints/--repeat/--duration (unknown: {sorted(unknown)})")
    return Options(
        depths=[int(depth) for depth in args.depths.split(",")],
        load=Load(args.threads, args.connections, args.duration),
        repeat=args.repeat,
        reservation_ms=args.reservation_ms,
        endpoints=endpoints,
    )


def main(argv: Sequence[str] | None = None) -> None:
    options = parse_args(argv)
    rows = measure(options)
    print(table(rows))
    print()
    print("\n".join(verdicts(rows)))


if __name__ == "__main__":
    main()
