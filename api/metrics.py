"""/metrics in Prometheus text format: the queue, read from Redis, and this process's HTTP.

Queue figures (depth per state, images waiting and in progress, age of the
oldest waiting job, lifetime counters, claim-to-complete durations) are read
from Redis at scrape time, in one broker call (`Queue.figures()`, the same
figures /v2/queue shows), so every replica and worker process reports the same,
whole-queue values: sum them over replicas never, take any one (e.g.
`max by (job)`). `sdq_queue_waiting_images` is the figure GPU workers are
autoscaled on: its name and meaning are an interface. Each live worker's own
figures over its last report interval (GPU-busy ratio, images per second,
seconds per image by resolution) come from Redis too, where the workers report
them with their render samples.

HTTP figures (one latency histogram per endpoint and status; its `_count` is
the request count) are kept per process. With several uvicorn workers, set
PROMETHEUS_MULTIPROC_DIR to an empty folder before the process starts:
prometheus-client then keeps them in files there and any worker's /metrics
reports the sum of all. Several replicas are scraped one by one (Prometheus
labels each by `instance`).
"""

from __future__ import annotations

import os
import time
from collections.abc import Iterator

from fastapi import APIRouter
from fastapi.responses import Response
from prometheus_client import CollectorRegistry, Histogram, generate_latest
from prometheus_client.core import (
    CounterMetricFamily,
    GaugeMetricFamily,
    HistogramMetricFamily,
    Metric,
)
from prometheus_client.exposition import CONTENT_TYPE_PLAIN_0_0_4
from prometheus_client.multiprocess import MultiProcessCollector
from starlette.types import ASGIApp, Receive, Scope, Send

from api.asgi_status import StatusRecorder
from api.server_watch import ServerWatch
from api.services import ServicesDep
from broker.errors import StorageUnavailable
from broker.figures import QueueFigures
from broker.queue import Queue

# Upper bounds (ms) of the claim-to-complete histogram: the list in
# broker/lua/_lib.lua (record_duration), which counts them in Redis.
DURATION_BUCKETS_MS = (1000, 2500, 5000, 10000, 20000, 30000, 60000, 120000, 300000, 600000)
LATENCY_BUCKETS_S = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5)
_COUNTERS = {  # field of {p}:stats -> metric name and help
    "added": ("sdq_jobs_added", "Jobs added"),
    "complete": ("sdq_jobs_completed", "Jobs completed"),
    "failed": ("sdq_jobs_failed", "Jobs failed after their last attempt"),
    "requeued": ("sdq_jobs_requeued", "Claims that ended without completion; the job waits again"),
    "cancelled": ("sdq_jobs_cancelled", "Jobs withdrawn by their owner"),
}


class HttpMetrics:
    """Request latency per endpoint and status, cheap enough for the polling hot path
    (one dict lookup and one histogram observation per request)."""

    def __init__(self) -> None:
        self.registry = CollectorRegistry(auto_describe=True)
        self._latency = Histogram(
            "sdq_http_request_duration_seconds",
            "HTTP request latency by endpoint and status code; _count is the request count",
            ["endpoint", "code"],
            buckets=LATENCY_BUCKETS_S,
            registry=self.registry,
        )
        self._children: dict[tuple[str, int], Histogram] = {}

    def observe(self, endpoint: str, code: int, seconds: float) -> None:
        child = self._children.get((endpoint, code))
        if child is None:
            child = self._children[(endpoint, code)] = self._latency.labels(endpoint, str(code))
        child.observe(seconds)

    def exposition(self) -> bytes:
        directory = os.environ.get("PROMETHEUS_MULTIPROC_DIR")
        if not directory:
            return generate_latest(self.registry)
        merged = CollectorRegistry()
        MultiProcessCollector(merged, path=directory)  # type: ignore[no-untyped-call]  # untyped
        return generate_latest(merged)


class HttpMetricsMiddleware:
    """Times every request. Endpoints are labelled by route template (or the legacy
    path), anything unrouted as `other`, so a scan of random paths adds no series."""

    def __init__(self, app: ASGIApp, metrics: HttpMetrics, by_path: bool = False) -> None:
        self.app = app
        self.metrics = metrics
        self.by_path = by_path  # label by path: only in front of a fixed set of paths

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        started = time.perf_counter()
        recorder = StatusRecorder(send)
        try:
            await self.app(scope, receive, recorder)
        finally:
            endpoint = scope["path"] if self.by_path else _endpoint(scope)
            self.metrics.observe(endpoint, recorder.status, time.perf_counter() - started)


def _endpoint(scope: Scope) -> str:
    route = scope.get("route")
    path = getattr(route, "path", None)
    return path if isinstance(path, str) else "other"


class QueueCollector:
    """Turns one QueueFigures (or None: Redis unreachable) into metric families."""

    def __init__(self, figures: QueueFigures | None) -> None:
        self.figures = figures

    def collect(self) -> Iterator[Metric]:
        up = GaugeMetricFamily("sdq_redis_up", "1 if Redis answered this scrape")
        up.add_metric([], 0 if self.figures is None else 1)
        yield up
        f = self.figures
        if f is None:
            return
        depth = GaugeMetricFamily("sdq_queue_jobs", "Unfinished jobs by state", labels=["state"])
        depth.add_metric(["new"], f.new)
        depth.add_metric(["pending"], f.pending)
        yield depth
        yield _gauge(
            "sdq_queue_reserved_jobs",
            "New jobs handed out by /getNextJob, not yet pending",
            f.reserved,
        )
        yield _gauge(
            "sdq_queue_waiting_images",
            "Images of the jobs in state new (not yet claimed; reserved ones included)",
            f.new_images,
        )
        yield _gauge("sdq_queue_pending_images", "Images of the pending jobs", f.pending_images)
        yield _gauge(
            "sdq_queue_paused",
            "1 while the operator has paused the queue (sdq admin pause): no job is handed out",
            int(f.paused_ms is not None),
        )
        yield _age("sdq_queue_oldest_waiting_age_seconds", "Oldest new job not handed out", f)
        yield _age("sdq_queue_oldest_open_age_seconds", "Oldest new or pending job", f)
        for stat, (name, text) in _COUNTERS.items():
            counter = CounterMetricFamily(name, text)
            counter.add_metric([], f.counters.get(stat, 0))
            yield counter
        yield _durations(f.durations)
        yield from _render_figures(f)


def _gauge(name: str, text: str, value: float) -> GaugeMetricFamily:
    gauge = GaugeMetricFamily(name, text)
    gauge.add_metric([], value)
    return gauge


def _age(name: str, text: str, f: QueueFigures) -> GaugeMetricFamily:
    since = f.oldest_waiting_ms if "waiting" in name else f.oldest_open_ms
    age = GaugeMetricFamily(name, text + " (0 when none), seconds, Redis clock")
    age.add_metric([], 0.0 if since is None else max(0, f.now_ms - since) / 1000)
    return age


def _durations(fields: dict[str, int]) -> HistogramMetricFamily:
    family = HistogramMetricFamily(
        "sdq_job_claim_to_complete_seconds",
        "From the claim that completed a job to its completion, by resolution",
        labels=["resolution"],
    )
    resolutions = sorted(name.removesuffix(":count") for name in fields if name.endswith(":count"))
    for res in resolutions:
        cumulative, buckets = 0, []
        for bound in DURATION_BUCKETS_MS:
            cumulative += fields.get(f"{res}:le:{bound}", 0)
            buckets.append((str(bound / 1000), cumulative))
        buckets.append(("+Inf", fields[f"{res}:count"]))
        family.add_metric([res], buckets, fields.get(f"{res}:sum_ms", 0) / 1000)
    return family


def _render_figures(f: QueueFigures) -> Iterator[Metric]:
    recent = GaugeMetricFamily(
        "sdq_render_seconds_per_image",
        "Seconds per image by resolution, all workers, weighted to recent reports",
        labels=["resolution"],
    )
    for resolution, measured in sorted(f.render_times.items()):
        recent.add_metric([resolution], measured.per_image_ms / 1000)
    yield recent
    busy = GaugeMetricFamily(
        "sdq_worker_gpu_busy_ratio",
        "Share of its last report interval a worker's GPU spent rendering",
        labels=["worker"],
    )
    rate = GaugeMetricFamily(
        "sdq_worker_images_per_second",
        "Images a worker rendered per second over its last report interval",
        labels=["worker"],
    )
    each = GaugeMetricFamily(
        "sdq_worker_seconds_per_image",
        "Seconds per image a worker took over its last report interval, by resolution",
        labels=["worker", "resolution"],
    )
    for worker, figures in sorted(f.workers.items()):
        busy.add_metric([worker], figures.busy_ratio)
        rate.add_metric([worker], figures.images_per_s)
        for resolution, seconds in sorted(figures.per_image_s.items()):
            each.add_metric([worker, resolution], seconds)
    yield from (busy, rate, each)


class ServerCollector:
    """What this process knows of the Redis server: whether it lost its data, and
    what in its configuration can (api/server_watch.py)."""

    def __init__(self, watch: ServerWatch) -> None:
        self.watch = watch

    def collect(self) -> Iterator[Metric]:
        empty = CounterMetricFamily(
            "sdq_redis_came_back_empty",
            "Times this process saw Redis lose its data (the queue's epoch key gone)",
        )
        empty.add_metric([], self.watch.came_back_empty)
        yield empty
        epoch = self.watch.epoch
        started = 0.0 if epoch is None else epoch.started_ms / 1000
        yield _gauge(
            "sdq_redis_epoch_start_seconds",
            "When the queue's data in Redis began (Unix time): a change is a Redis that lost it",
            started,
        )
        yield _gauge(
            "sdq_redis_config_problems",
            "Settings of Redis that can lose jobs (no persistence, eviction); see /readyz",
            len(self.watch.problems),
        )


async def exposition(queue: Queue, http: HttpMetrics, server: ServerWatch) -> bytes:
    """The whole /metrics page; the queue part is left out if Redis does not answer."""
    try:
        figures: QueueFigures | None = await queue.figures()
    except StorageUnavailable:
        figures = None
    registry = CollectorRegistry(auto_describe=False)
    registry.register(QueueCollector(figures))
    registry.register(ServerCollector(server))
    return generate_latest(registry) + http.exposition()


def metrics_router(http: HttpMetrics) -> APIRouter:
    router = APIRouter(tags=["operations"])

    @router.get(
        "/metrics",
        summary="Prometheus metrics: the queue (from Redis) and this process's HTTP",
        response_class=Response,
        responses={200: {"content": {CONTENT_TYPE_PLAIN_0_0_4: {}}}},
    )
    async def metrics(services: ServicesDep) -> Response:
        body = await exposition(services.queue, http, services.server)
        return Response(body, media_type=CONTENT_TYPE_PLAIN_0_0_4)

    return router
