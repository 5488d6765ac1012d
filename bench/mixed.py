"""`python -m bench.load --mixed`: one heavy client and many light ones, under
SDQ_SCHEDULING=fifo and =fair side by side in one run.

One visitor queues `--heavy-jobs` jobs at once; `--light` visitors with one job each
arrive evenly while the heavy client's backlog drains (over `--spread` of the time
the workers need for it). Every visitor is its own address (the client sockets bind
127.0.0.2, 127.0.0.3, ...; nginx passes the address on, as in production), so the
fair queue and the limits see one client each. Simulated GPU workers
(bench.sleep_worker) render; everything goes through `sdq cluster`'s nginx.

Figures come from the job hashes in Redis (the server's clock): a job's wait is
started_ms - created_ms; the heavy client's completion time runs from its first job's
creation to its last job's completion; throughput is the jobs completed per second
from the first creation to the last completion. Rounds alternate fifo and fair, and
the table shows medians over the rounds.
"""

from __future__ import annotations

import asyncio
import statistics
import tempfile
import time
import uuid
from dataclasses import dataclass
from pathlib import Path

import uvloop

from bench.load import MixedArgs, percentile, stored_jobs
from bench.users import heavy_client, light_client
from sdq.cluster import Cluster

HEAVY_ADDRESS = "127.0.0.2"


@dataclass(frozen=True)
class Round:
    scheduling: str
    light_wait_s: list[float]
    heavy_done_s: float
    jobs_per_s: float
    jobs: int
    complete: int


def light_address(i: int) -> str:
    return f"127.0.{1 + (i + 3) // 250}.{(i + 3) % 250 + 2}"


async def drive(url: str, args: MixedArgs, run_id: str) -> None:
    drain_s = args.heavy_jobs * args.render_ms / 1000 / args.workers
    deadline = time.monotonic() + 10 * drain_s + 30
    arrivals = [0.3 + args.spread * drain_s * i / max(1, args.light) for i in range(args.light)]
    await asyncio.gather(
        heavy_client(url, HEAVY_ADDRESS, args.heavy_jobs - 1, f"mixed {run_id} heavy", deadline),
        *(
            light_client(url, light_address(i), f"mixed {run_id} light {i}", at, 0.5, deadline)
            for i, at in enumerate(arrivals)
        ),
    )


def one_round(args: MixedArgs, scheduling: str, folder: Path) -> Round:
    env = {"SDQ_INSECURE_SKIP_CAPTCHA": "true", "SDQ_SCHEDULING": scheduling,
           "SDQ_ACCESS_LOG": "false"}  # fmt: skip
    cluster = Cluster(
        folder,
        replicas=args.replicas,
        workers=args.workers,
        env=env,
        worker_args=("-m", "bench.sleep_worker", "--ms-per-image", str(args.render_ms)),
    )
    run_id = uuid.uuid4().hex[:8]
    with cluster:
        uvloop.run(drive(cluster.url, args, run_id))
        jobs = uvloop.run(stored_jobs(cluster.redis_url, run_id, label="mixed"))
    done = [j for j in jobs.values() if j.get("state") == "complete"]
    light = [j for j in done if " light " in j["prompt"]]
    heavy = [j for j in jobs.values() if " heavy" in j["prompt"]]
    created = [int(j["created_ms"]) for j in jobs.values()]
    finished = [int(j["finished_ms"]) for j in done]
    heavy_done = [int(j["finished_ms"]) for j in heavy if j.get("state") == "complete"]
    span_s = (max(finished) - min(created)) / 1000 if finished else float("nan")
    return Round(
        scheduling,
        [(int(j["started_ms"]) - int(j["created_ms"])) / 1000 for j in light],
        (max(heavy_done) - min(int(j["created_ms"]) for j in heavy)) / 1000,
        len(done) / span_s,
        len(jobs),
        len(done),
    )


def table(rounds: list[Round]) -> str:
    by_mode: dict[str, list[Round]] = {}
    for r in rounds:
        by_mode.setdefault(r.scheduling, []).append(r)

    def median(mode: str, figure: str) -> float:
        values = []
        for r in by_mode[mode]:
            if figure in ("p50", "p95"):
                values.append(percentile(r.light_wait_s, 0.5 if figure == "p50" else 0.95))
            else:
                values.append(getattr(r, figure))
        return statistics.median(values)

    rows = [
        ("light users' wait p50 (s)", "p50", "{:.2f}"),
        ("light users' wait p95 (s)", "p95", "{:.2f}"),
        ("heavy client's completion (s)", "heavy_done_s", "{:.1f}"),
        ("throughput (jobs/s)", "jobs_per_s", "{:.2f}"),
    ]
    lines = ["| | fifo | fair | fair / fifo |", "|---|---|---|---|"]
    for name, figure, fmt in rows:
        fifo, fair = median("fifo", figure), median("fair", figure)
        lines.append(f"| {name} | {fmt.format(fifo)} | {fmt.format(fair)} | {fair / fifo:.2f} |")
    complete = {mode: f"{sum(r.complete for r in rs)}/{sum(r.jobs for r in rs)}"
                for mode, rs in by_mode.items()}  # fmt: skip
    lines.append(f"| jobs complete, all rounds | {complete['fifo']} | {complete['fair']} | |")
    return "\n".join(lines)


def run_mixed(args: MixedArgs) -> int:
    rounds = []
    with tempfile.TemporaryDirectory(prefix="sdq-mixed-") as tmp:
        for k in range(args.rounds):
            for scheduling in ("fifo", "fair") if k % 2 == 0 else ("fair", "fifo"):
                folder = Path(tmp) / f"{scheduling}-{k}"
                result = one_round(args, scheduling, folder)
                print(
                    f"round {k + 1} {scheduling}: light p95 wait "
                    f"{percentile(result.light_wait_s, 0.95):.2f} s, heavy done in "
                    f"{result.heavy_done_s:.1f} s, {result.jobs_per_s:.2f} jobs/s",
                    flush=True,
                )
                rounds.append(result)
    print(
        f"\n{args.heavy_jobs} jobs of one heavy client, {args.light} light clients with one "
        f"job each; {args.workers} workers at {args.render_ms} ms per image; medians of "
        f"{args.rounds} rounds per mode\n"
    )
    print(table(rounds))
    return 0
