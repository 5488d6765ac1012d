"""The direct transport: claims, renewals and completions are broker scripts.

Two clients: one for the short calls, and one whose socket timeout outlasts the
blocking wait on the wake-up list (a BLPOP longer than the socket timeout would
read as a dead connection). The short calls hold one connection of their pool
for good (`Redis.client()`): a worker makes one call at a time, and checking a
connection out of the shared blocking pool and back costs about as much CPU
as the call itself (≈ 100 µs of ≈ 200 µs, measured here), twice per job.
"""

from __future__ import annotations

from types import TracebackType

from redis.asyncio import Redis, RedisCluster

from broker.connection import create_redis
from broker.errors import (
    InvalidTransition,
    JobCancelled,
    JobNotFound,
    StaleClaim,
    StorageUnavailable,
)
from broker.job import Claim
from broker.queue import Queue
from broker.renders import RenderSample, WorkerFigures
from broker.states import JobState
from gpu_worker.errors import JobCancelled as Cancelled
from gpu_worker.errors import LeaseLost, SourceUnavailable
from gpu_worker.settings import WorkerSettings


class _Translated:
    """Broker errors in the worker's terms: unreachable -> retry; fenced -> lease lost.
    A plain class, not @asynccontextmanager: it wraps every call, twice per job."""

    async def __aenter__(self) -> None:
        return None

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        if isinstance(exc, StorageUnavailable):
            raise SourceUnavailable(f"redis: {exc}") from exc
        if isinstance(exc, JobCancelled):
            raise Cancelled("the job was cancelled") from exc
        if isinstance(exc, (StaleClaim, InvalidTransition, JobNotFound)):
            raise LeaseLost(type(exc).__name__) from exc


_translated = _Translated()


class RedisSource:
    name = "redis"
    renews = True

    def __init__(
        self,
        settings: WorkerSettings,
        worker_id: str,
        redis: Redis | RedisCluster | None = None,
        waiter: Redis | RedisCluster | None = None,
    ) -> None:
        wait_timeout = settings.idle_poll_s + settings.redis_timeout_s
        # closed by aclose(); clients passed in are the caller's
        self._owned: list[Redis | RedisCluster] = []
        if redis is None:
            redis = pooled = create_redis(settings)
            if isinstance(pooled, Redis):  # a cluster client keeps connections per node
                redis = pooled.client()  # one connection held for good: see the module's doc
                self._owned.append(redis)  # the held connection goes back, then the pool closes
            self._owned.append(pooled)
        if waiter is None:
            waiter = create_redis(settings.model_copy(update={"redis_timeout_s": wait_timeout}))
            self._owned.append(waiter)
        self._redis, self._waiter = redis, waiter
        self._settings = settings
        self._worker_id = worker_id
        self.queue = Queue(self._redis, settings)
        self._wait_queue = Queue(self._waiter, settings)

    async def claim(self) -> Claim | None:
        async with _translated:
            return await self.queue.claim(self._worker_id, self._settings.worker_lease_ms)

    async def wait_for_work(self) -> None:
        async with _translated:
            await self._wait_queue.wait_for_work(self._settings.idle_poll_s)

    async def renew(
        self,
        claim: Claim,
        progress: int,
        fraction: float | None = None,
        preview: bytes | None = None,
    ) -> None:
        async with _translated:
            await self.queue.renew_lease(
                claim.job.token,
                _fence(claim),
                self._settings.worker_lease_ms,
                progress,
                fraction,
                preview,
            )

    async def complete(self, claim: Claim) -> None:
        async with _translated:
            await self.queue.complete(claim.job.token, _fence(claim))

    async def release(self, claim: Claim, reason: str, counted: bool = True) -> JobState | None:
        async with _translated:
            return await self.queue.release(claim.job.token, _fence(claim), reason, counted)

    async def report(
        self,
        samples: list[RenderSample],
        leaving: bool,
        figures: WorkerFigures | None = None,
    ) -> None:
        async with _translated:
            await self.queue.record_renders(self._worker_id, samples, leaving, figures)

    async def take_due_images(self, limit: int) -> list[str]:
        async with _translated:
            return await self.queue.take_due_images(limit)

    async def aclose(self) -> None:
        for client in self._owned:
            await client.aclose()


def _fence(claim: Claim) -> int:
    if claim.fence is None:  # a direct claim always has one
        raise LeaseLost("claim without a fence")
    return claim.fence
