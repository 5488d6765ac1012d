"""`python -m bench.worker`: what the queue itself costs a worker, next to RQ.

Drains a pre-filled queue of jobs with a zero-cost renderer and a null store
(so only the queue's overhead is measured) through each transport, with 1 and
4 worker processes, and RQ's SimpleWorker (no-op job, burst mode) on the same
Redis engine in the same run as the baseline. Then the wake-up latency: jobs
added one at a time to an idle direct worker, from creation to claim (both
stamped by the Redis clock, so at millisecond resolution).

Every worker is its own process, started and connected before the clock starts.
Timings on these machines swing from run to run: compare the ratios, and use
`--repeat N` for the medians of N rounds (each round runs every drain once).
"""

from __future__ import annotations

import argparse
import asyncio
import multiprocessing as mp
import os
import random
import signal
import statistics
import sys
import time
import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from multiprocessing.process import BaseProcess
from multiprocessing.synchronize import Event

import httpx
import redis as sync_redis
from PIL import Image
from redis.asyncio import Redis

from broker.queue import Queue
from gpu_worker.renderers.base import RenderedImage, RenderRequest, StepHook, no_hook
from gpu_worker.settings import WorkerSettings
from gpu_worker.sources.http import HttpSource
from gpu_worker.sources.redis import RedisSource
from gpu_worker.storage.base import Guard, Staged
from gpu_worker.worker import Worker
from sdq.embedded_redis import EmbeddedRedis
from sdq.supervisor import Process, free_port, kill, spawn, stop
from sdq.worker import serve

SECRET = "bench-backend-secret-of-bench-worker"
API_PREFIX = "bench-http"  # the API process serves one queue; HTTP runs share it


class ZeroRenderer:
    """Costs nothing but a 1x1 image per index (the worker still encodes it)."""

    name = "zero"

    def __init__(self) -> None:
        self._pixel = Image.new("RGB", (1, 1))

    def render(self, request: RenderRequest, on_step: StepHook = no_hook) -> list[RenderedImage]:
        return [RenderedImage(self._pixel, {}) for _ in request.indexes]


class NullStore:
    def stage(self, token: str, fence: int, index: int, png: bytes, guard: Guard) -> Staged:
        return Staged(token, fence, index, png)

    def publish(self, staged: Staged, guard: Guard) -> None:
        pass

    def discard(self, token: str, fence: int) -> None:
        pass

    def clean(self, token: str) -> None:
        pass


def noop() -> None:
    """The RQ job."""


@dataclass
class Row:
    name: str
    workers: int
    jobs: int
    seconds: float

    @property
    def rate(self) -> float:
        return self.jobs / self.seconds


# -- our workers ---------------------------------------------------------------


def _our_worker(settings: WorkerSettings, go: Event, ready: Event) -> None:
    import uvloop

    async def main() -> int:
        worker_id = f"bench-{os.getpid()}"
        source = (
            HttpSource(settings, worker_id)
            if settings.transport == "http"
            else RedisSource(settings, worker_id)
        )
        worker = Worker(source, ZeroRenderer(), NullStore(), settings)
        await source.report([], leaving=False)  # connections open before the clock starts
        ready.set()
        await asyncio.to_thread(go.wait)
        return await serve(worker)

    sys.exit(uvloop.run(main()))


async def _fill(url: str, prefix: str, jobs: int) -> None:
    client = Redis.from_url(url, decode_responses=True)
    queue = Queue(client, WorkerSettings(key_prefix=prefix))
    for i in range(jobs):
        await queue.add_job(uuid.uuid4().hex, f"bench {i}", 1, 576, 576)
    await client.aclose()


async def _completed(url: str, prefix: str) -> int:
    """The queue's lifetime `complete` counter, read as every consumer reads the queue's
    figures (Queue.figures())."""
    client = Redis.from_url(url, decode_responses=True)
    try:
        figures = await Queue(client, WorkerSettings(key_prefix=prefix)).figures()
        return figures.counters.get("complete", 0)
    finally:
        await client.aclose()


async def _drain(url: str, prefix: str, until: int, go: Event, procs: list[BaseProcess]) -> float:
    """Starts the workers (`go`) and returns the seconds until `until` jobs are complete."""
    client = Redis.from_url(url, decode_responses=True)
    queue = Queue(client, WorkerSettings(key_prefix=prefix))
    try:
        await queue.figures()  # connected and loaded before the clock starts
        started = time.perf_counter()
        go.set()
        while (await queue.figures()).counters.get("complete", 0) < until:
            if not all(proc.is_alive() for proc in procs):
                raise RuntimeError("a worker died")
            await asyncio.sleep(0.002)
        return time.perf_counter() - started
    finally:
        await client.aclose()


def run_ours(transport: str, workers: int, jobs: int, engine: EmbeddedRedis, api_url: str) -> Row:
    prefix = API_PREFIX if transport == "http" else f"bench-{uuid.uuid4().hex[:8]}"
    before = asyncio.run(_completed(engine.url, prefix))
    asyncio.run(_fill(engine.url, prefix, jobs))
    settings = WorkerSettings(
        transport=transport,  # type: ignore[arg-type]
        redis_url=engine.url,
        key_prefix=prefix,
        api_url=api_url,
        backend_secret=SECRET,
        http_poll_s=0.01,
    )
    ctx = mp.get_context("spawn")
    go = ctx.Event()
    readies = [ctx.Event() for _ in range(workers)]
    procs: list[BaseProcess] = [
        ctx.Process(target=_our_worker, args=(settings, go, r)) for r in readies
    ]
    for proc in procs:
        proc.start()
    for ready in readies:
        ready.wait(60)
    try:
        seconds = asyncio.run(_drain(engine.url, prefix, before + jobs, go, procs))
    except RuntimeError as exc:
        raise RuntimeError(f"{exc} ({transport} transport)") from exc
    for proc in procs:
        if proc.pid is not None:
            os.kill(proc.pid, signal.SIGTERM)
    for proc in procs:
        proc.join(30)
    return Row(f"{transport} (ours)", workers, jobs, seconds)


# -- RQ ------------------------------------------------------------------------


def _rq_worker(url: str, queue_name: str, go: Event, ready: Event) -> None:
    from rq import Queue as RQQueue
    from rq import SimpleWorker

    connection = sync_redis.Redis.from_url(url)
    worker = SimpleWorker([RQQueue(queue_name, connection=connection)], connection=connection)
    ready.set()
    go.wait()
    worker.work(burst=True, logging_level="WARNING")


def run_rq(workers: int, jobs: int, engine: EmbeddedRedis) -> Row:
    from rq import Queue as RQQueue

    name = f"bench-{uuid.uuid4().hex[:8]}"
    connection = sync_redis.Redis.from_url(engine.url)
    queue = RQQueue(name, connection=connection)
    for start in range(0, jobs, 500):
        batch = [RQQueue.prepare_data(noop) for _ in range(min(500, jobs - start))]
        queue.enqueue_many(batch)
    ctx = mp.get_context("spawn")
    go = ctx.Event()
    readies = [ctx.Event() for _ in range(workers)]
    procs = [ctx.Process(target=_rq_worker, args=(engine.url, name, go, r)) for r in readies]
    for proc in procs:
        proc.start()
    for ready in readies:
        ready.wait(60)
    finished = queue.finished_job_registry
    started = time.perf_counter()
    go.set()
    # The clock stops at the last job done, as for ours (not at the processes' exit).
    while finished.get_job_count(cleanup=False) < jobs and any(p.is_alive() for p in procs):
        time.sleep(0.002)
    seconds = time.perf_counter() - started
    for proc in procs:
        proc.join(600)
    done = finished.count
    connection.close()
    return Row("RQ SimpleWorker", workers, done, seconds)


# -- wake-up latency -----------------------------------------------------------


async def _wakeups(url: str, prefix: str, samples: int) -> list[int]:
    client = Redis.from_url(url, decode_responses=True)
    queue = Queue(client, WorkerSettings(key_prefix=prefix))
    latencies = []
    for i in range(samples):
        await asyncio.sleep(0.02 + random.random() * 0.03)  # the worker is idle again
        token = uuid.uuid4().hex
        created = await queue.add_job(token, f"wake {i}", 1, 576, 576)
        # Polls Redis: the claim happens in another process, there is nothing to await.
        while not (started := await client.hget(queue.keys.job(token), "started_ms")):  # noqa: ASYNC110
            await asyncio.sleep(0.001)
        latencies.append(int(started) - created)
    await client.aclose()
    return latencies


def run_wakeup(samples: int, engine: EmbeddedRedis) -> list[int]:
    prefix = f"bench-{uuid.uuid4().hex[:8]}"
    settings = WorkerSettings(redis_url=engine.url, key_prefix=prefix)
    ctx = mp.get_context("spawn")
    go, ready = ctx.Event(), ctx.Event()
    proc = ctx.Process(target=_our_worker, args=(settings, go, ready))
    proc.start()
    ready.wait(60)
    go.set()
    time.sleep(0.5)  # blocked on the wake-up list by now
    latencies = asyncio.run(_wakeups(engine.url, prefix, samples))
    os.kill(proc.pid, signal.SIGTERM)
    proc.join(30)
    return latencies


# -- the run -------------------------------------------------------------------


def start_api(engine: EmbeddedRedis) -> tuple[Process, str]:
    port = free_port()
    env = {k: v for k, v in os.environ.items() if not k.startswith("SDQ_")}
    env.update(
        SDQ_REDIS_URL=engine.url,
        SDQ_KEY_PREFIX=API_PREFIX,
        SDQ_BACKEND_SECRETS=SECRET,
        SDQ_INSECURE_SKIP_CAPTCHA="true",
        SDQ_ACCESS_LOG="false",
        SDQ_LOG_JSON="false",
    )
    cmd = [sys.executable, "-m", "sdq.cli", "api", "--host", "127.0.0.1", "--port", str(port)]
    proc = spawn([*cmd, "--workers", "2"], env, discard_output=True)
    url = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        try:
            if httpx.get(url + "/healthz", timeout=1).status_code == 200:
                return proc, url
        except httpx.TransportError:
            time.sleep(0.1)
    kill(proc)
    raise RuntimeError("the API did not start")


def percentile(values: Sequence[int], q: float) -> float:
    ordered = sorted(values)
    return float(ordered[min(len(ordered) - 1, round(q * (len(ordered) - 1)))])


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.worker", description=__doc__)
    parser.add_argument("--jobs", type=int, default=2000, help="jobs per drain")
    parser.add_argument("--wakeups", type=int, default=200, help="wake-up samples")
    parser.add_argument(
        "--repeat", type=int, default=1, help="rounds of every drain (medians are shown)"
    )
    args = parser.parse_args(argv)

    engine = EmbeddedRedis().start()
    api, api_url = start_api(engine)
    rounds: list[list[Row]] = []
    try:
        for _ in range(max(1, args.repeat)):
            rows = [run_rq(workers, args.jobs, engine) for workers in (1, 4)]
            for transport in ("redis", "http"):
                for workers in (1, 4):
                    rows.append(run_ours(transport, workers, args.jobs, engine, api_url))
            rounds.append(rows)
        wakeups = run_wakeup(args.wakeups, engine)
    finally:
        stop(api)
        engine.stop()

    print(f"\nqueue overhead: zero-cost renderer, {args.jobs} pre-filled jobs, 1 image each")
    if len(rounds) > 1:
        print(f"{len(rounds)} rounds: medians; x RQ is the median of each round's own ratio")
    print(f"{'transport':<18} {'workers':>7} {'jobs':>6} {'seconds':>8} {'jobs/s':>8} {'x RQ':>6}")
    for i, row in enumerate(rounds[0]):
        runs = [rows[i] for rows in rounds]
        ratio = statistics.median(rows[i].rate / rows[0].rate for rows in rounds)
        print(
            f"{row.name:<18} {row.workers:>7} {row.jobs:>6} "
            f"{statistics.median(r.seconds for r in runs):>8.2f} "
            f"{statistics.median(r.rate for r in runs):>8.0f} {ratio:>6.2f}"
        )
    print(
        f"\nwake-up (job added -> claimed by an idle direct worker, {len(wakeups)} samples, "
        f"Redis clock ms): p50 {percentile(wakeups, 0.5):.0f} ms, "
        f"p99 {percentile(wakeups, 0.99):.0f} ms, max {max(wakeups)} ms"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
