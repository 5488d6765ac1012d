"""The direct transport: claims, renewals and completions are broker scripts.

Two clients: one for the short calls, and one whose socket timeout outlasts the
blocking wait on the wake-up list (a BLPOP longer than the socket timeout would
read as a dead connection).
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from redis.asyncio import Redis

from broker.connection import create_redis
from broker.errors import InvalidTransition, JobNotFound, StaleAttempt, StorageUnavailable
from broker.queue import Queue
from broker.states import JobState
from gpu_worker.errors import LeaseLost, SourceUnavailable
from gpu_worker.settings import WorkerSettings
from gpu_worker.sources.base import Lease, RenderSample
from gpu_worker.telemetry import Telemetry


@asynccontextmanager
async def _translated() -> AsyncIterator[None]:
    """Broker errors in the worker's terms: unreachable -> retry; fenced -> lease lost."""
    try:
        yield
    except StorageUnavailable as exc:
        raise SourceUnavailable(f"redis: {exc}") from exc
    except (StaleAttempt, InvalidTransition, JobNotFound) as exc:
        raise LeaseLost(type(exc).__name__) from exc


class RedisSource:
    name = "redis"

    def __init__(
        self,
        settings: WorkerSettings,
        worker_id: str,
        redis: Redis | None = None,
        waiter: Redis | None = None,
    ) -> None:
        wait_timeout = settings.idle_poll_s + settings.redis_timeout_s
        self._redis = redis or create_redis(settings)
        self._waiter = waiter or create_redis(
            settings.model_copy(update={"redis_timeout_s": wait_timeout})
        )
        # Clients passed in belong to the caller; only ours are closed by aclose().
        self._owned = [
            client
            for client, given in ((self._redis, redis), (self._waiter, waiter))
            if given is None
        ]
        self._settings = settings
        self._worker_id = worker_id
        self.queue = Queue(self._redis, settings)
        self._wait_queue = Queue(self._waiter, settings)
        self._telemetry = Telemetry(self._redis, self.queue.keys)

    async def claim(self) -> Lease | None:
        async with _translated():
            claim = await self.queue.claim(self._worker_id, self._settings.worker_lease_ms)
        if claim is None:
            return None
        return Lease(claim.job, claim.attempt, claim.lease_until_ms)

    async def wait_for_work(self) -> None:
        async with _translated():
            await self._wait_queue.wait_for_work(self._settings.idle_poll_s)

    async def renew(self, lease: Lease, progress: int) -> None:
        async with _translated():
            await self.queue.renew_lease(
                lease.job.token, _attempt(lease), self._settings.worker_lease_ms, progress
            )

    async def complete(self, lease: Lease) -> None:
        async with _translated():
            await self.queue.complete(lease.job.token, _attempt(lease))

    async def release(self, lease: Lease, reason: str) -> JobState | None:
        async with _translated():
            return await self.queue.release(lease.job.token, _attempt(lease), reason)

    async def report(self, samples: list[RenderSample], leaving: bool) -> None:
        async with _translated():
            await self._telemetry.record(self._worker_id, samples, leaving)

    async def aclose(self) -> None:
        for client in self._owned:
            await client.aclose()


def _attempt(lease: Lease) -> int:
    if lease.attempt is None:  # a direct claim always has one
        raise LeaseLost("claim without attempt id")
    return lease.attempt
