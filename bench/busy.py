"""`python -m bench.busy`: how busy one worker keeps its GPU under a backlog.

One worker drains a pre-filled queue. Its renderer simulates the GPU: a
GIL-free sleep per denoising step (SDQ_STEPS steps, a time per image and
resolution given by --ms), returning images of photographic entropy
(bench/entropy.py), so PNG encoding costs what it costs for real output. The
broker is a real Redis (EmbeddedRedis); the images go to S3 through boto3,
to a local S3-compatible server (moto's, in its own process) with an injected
latency per request (--s3-latency-ms, slept in the calling thread as a network
round trip would be). Both transports: direct Redis, and HTTP through a real
API process. Pipelining on (the default) and off (SDQ_PIPELINE=false: the old
loop, one step after another) side by side in the same run.

Figures: GPU-busy fraction (time inside the renderer / wall time from the
worker's start to the last completion), images per second, and the ideal
(the simulated GPU never idle). `--repeat N` prints medians of N rounds.
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import sys
import threading
import time
import uuid
from dataclasses import dataclass
from typing import Any

import boto3
from PIL import Image
from redis.asyncio import Redis

from bench.entropy import natural
from bench.worker import SECRET, start_api
from broker.queue import Queue
from gpu_worker.renderers.base import RenderedImage, RenderRequest, StepHook, no_hook
from gpu_worker.settings import WorkerSettings
from gpu_worker.sources.http import HttpSource
from gpu_worker.sources.redis import RedisSource
from gpu_worker.storage.s3 import S3Store
from gpu_worker.worker import Worker
from sdq.embedded_redis import EmbeddedRedis
from sdq.supervisor import Process, free_port, spawn, stop

REGION = "us-east-1"
API_PREFIX = "bench-http"  # bench.worker's API serves this prefix


class SimulatedGpu:
    """Sleeps like a GPU (no GIL held) step by step; returns realistic images."""

    name = "simulated-gpu"

    def __init__(self, ms_per_image: dict[tuple[int, int], float], steps: int) -> None:
        self.ms_per_image = ms_per_image
        self.steps = steps
        self.busy_s = 0.0
        self._pictures: dict[tuple[int, int], list[Image.Image]] = {}
        self._lock = threading.Lock()
        for size in ms_per_image:
            self._pictures[size] = [natural(*size, seed) for seed in range(4)]

    def render(self, request: RenderRequest, on_step: StepHook = no_hook) -> list[RenderedImage]:
        size = (request.width, request.height)
        step_s = self.ms_per_image[size] * len(request.indexes) / 1000 / self.steps
        pictures = self._pictures[size]
        started = time.perf_counter()
        try:
            for step in range(1, self.steps + 1):
                time.sleep(step_s)
                on_step(step, self.steps, lambda: pictures[0])
        finally:
            with self._lock:
                self.busy_s += time.perf_counter() - started
        return [
            RenderedImage(pictures[index % len(pictures)].copy(), {"sdq:index": str(index)})
            for index in request.indexes
        ]


@dataclass
class Run:
    transport: str
    pipeline: bool
    seconds: float
    busy_s: float
    images: int
    ideal_images_per_s: float

    @property
    def busy(self) -> float:
        return self.busy_s / self.seconds

    @property
    def images_per_s(self) -> float:
        return self.images / self.seconds


def s3_client(endpoint: str, latency_s: float) -> Any:
    client = boto3.client(
        "s3",
        region_name=REGION,
        endpoint_url=endpoint,
        aws_access_key_id="bench",
        aws_secret_access_key="bench-secret",  # moto accepts any
    )
    if latency_s:
        client.meta.events.register("before-send.s3", lambda **_: time.sleep(latency_s))
    return client


def start_s3() -> tuple[Process, str]:
    port = free_port()
    process = spawn(
        [sys.executable, "-m", "moto.server", "-H", "127.0.0.1", "-p", str(port)],
        discard_output=True,
    )
    endpoint = f"http://127.0.0.1:{port}"
    probe = s3_client(endpoint, 0)
    deadline = time.monotonic() + 30
    while True:
        try:
            probe.list_buckets()
            return process, endpoint
        except Exception:
            if time.monotonic() > deadline:
                stop(process)
                raise
            time.sleep(0.1)


async def drain(
    settings: WorkerSettings,
    gpu: SimulatedGpu,
    store: S3Store,
    jobs: list[tuple[int, int]],
    images_per_job: int,
) -> float:
    """Fills the queue, runs one worker until every job is complete; the seconds taken."""
    client = Redis.from_url(settings.redis_url.get_secret_value(), decode_responses=True)
    queue = Queue(client, settings)
    before = (await queue.figures()).counters.get("complete", 0)
    for i, (width, height) in enumerate(jobs):
        await queue.add_job(uuid.uuid4().hex, f"busy {i}", images_per_job, width, height)
    worker_id = f"bench-busy-{settings.transport}"
    source = (
        HttpSource(settings, worker_id)
        if settings.transport == "http"
        else RedisSource(settings, worker_id)
    )
    await source.report([], leaving=False)  # connected before the clock starts
    worker = Worker(source, gpu, store, settings)
    started = time.perf_counter()
    task = asyncio.create_task(worker.run())
    try:
        while (await queue.figures()).counters.get("complete", 0) < before + len(jobs):
            if task.done():
                raise RuntimeError(f"the worker ended early: {task.result()}")
            await asyncio.sleep(0.005)
        return time.perf_counter() - started
    finally:
        worker.stop()
        await asyncio.wait_for(task, 60)
        await source.aclose()
        await client.aclose()


def one_run(args: argparse.Namespace, transport: str, pipeline: bool, env: dict[str, str]) -> Run:
    sizes = [tuple(int(n) for n in size.split("x")) for size in args.sizes.split(",")]
    ms = {(w, h): args.ms * w * h / (768 * 576) for w, h in sizes}  # per image, by pixels
    jobs = [sizes[i % len(sizes)] for i in range(args.jobs)]
    gpu = SimulatedGpu(ms, args.steps)
    bucket = f"busy-{uuid.uuid4().hex[:8]}"
    client = s3_client(env["s3"], args.s3_latency_ms / 1000)
    client.create_bucket(Bucket=bucket)
    settings = WorkerSettings(
        transport=transport,  # type: ignore[arg-type]
        redis_url=env["redis"],
        key_prefix=API_PREFIX if transport == "http" else f"busy-{uuid.uuid4().hex[:8]}",
        api_url=env["api"],
        backend_secret=SECRET,
        storage="s3",
        s3_bucket=bucket,
        pipeline=pipeline,
        batch_size=args.batch_size,
        steps=args.steps,
        http_poll_s=0.01,
        idle_poll_s=0.5,
    )
    store = S3Store(bucket, "", client=client)
    seconds = asyncio.run(drain(settings, gpu, store, jobs, args.images))
    ideal = args.jobs * args.images / sum(ms[size] * args.images / 1000 for size in jobs)
    return Run(transport, pipeline, seconds, gpu.busy_s, args.jobs * args.images, ideal)


def table(rounds: list[list[Run]]) -> list[str]:
    rows = [
        f"{'transport':<10} {'pipeline':<8} {'busy':>6} {'images/s':>9} {'ideal':>7} "
        f"{'x ideal':>8} {'seconds':>8}"
    ]
    for i, run in enumerate(rounds[0]):
        runs = [r[i] for r in rounds]
        busy = statistics.median(r.busy for r in runs)
        rate = statistics.median(r.images_per_s for r in runs)
        rows.append(
            f"{run.transport:<10} {'on' if run.pipeline else 'off':<8} {busy:>6.3f} "
            f"{rate:>9.2f} {run.ideal_images_per_s:>7.2f} {rate / run.ideal_images_per_s:>8.3f} "
            f"{statistics.median(r.seconds for r in runs):>8.2f}"
        )
    return rows


def measure(args: argparse.Namespace) -> list[list[Run]]:
    engine = EmbeddedRedis().start()
    s3, endpoint = start_s3()
    api, api_url = start_api(engine)
    env = {"redis": engine.url, "s3": endpoint, "api": api_url}
    rounds = []
    try:
        for _ in range(max(1, args.repeat)):
            rounds.append(
                [
                    one_run(args, transport, pipeline, env)
                    for transport in args.transports.split(",")
                    for pipeline in (False, True)
                ]
            )
    finally:
        stop(api)
        stop(s3)
        engine.stop()
    return rounds


def parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="python -m bench.busy", description=__doc__)
    p.add_argument("--jobs", type=int, default=30, help="jobs in the backlog")
    p.add_argument("--images", type=int, default=4, help="images per job")
    p.add_argument("--batch-size", type=int, default=4)
    p.add_argument("--steps", type=int, default=25, help="simulated denoising steps")
    p.add_argument("--ms", type=float, default=150, help="GPU ms per 768x576 image (by pixels)")
    p.add_argument("--sizes", default="768x576", help="resolutions, cycled through the jobs")
    p.add_argument("--s3-latency-ms", type=float, default=30, help="added per S3 request")
    p.add_argument("--transports", default="redis,http")
    p.add_argument("--repeat", type=int, default=1)
    return p


def main(argv: list[str] | None = None) -> int:
    args = parser().parse_args(argv)
    rounds = measure(args)
    print(
        f"\none worker, {args.jobs} jobs x {args.images} images ({args.sizes}), batch "
        f"{args.batch_size}, simulated GPU {args.ms:g} ms/image (768x576) in {args.steps} steps, "
        f"S3 +{args.s3_latency_ms:g} ms per request"
        + (f", medians of {len(rounds)} rounds" if len(rounds) > 1 else "")
    )
    for row in table(rounds):
        print(row)
    return 0


if __name__ == "__main__":
    sys.exit(main())
