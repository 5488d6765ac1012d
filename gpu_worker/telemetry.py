"""Render times by resolution and live workers, kept in Redis for ETAs.

Workers buffer their samples (`RenderTimes`) and send them every few seconds,
so reporting costs nothing per job; a direct worker writes them itself, an
HTTP worker through the API's /backend/report (which calls `record` too).
The fields are documented in broker/keys.py and broker/scripts/record_renders.lua.
"""

from __future__ import annotations

from collections.abc import Iterable

from redis.asyncio import Redis
from redis.exceptions import RedisError

from broker.errors import StorageUnavailable
from broker.keys import QueueKeys
from broker.lua import Scripts
from gpu_worker.sources.base import RenderSample

FORGET_WORKER_AFTER_MS = 24 * 3600 * 1000


class RenderTimes:
    """A worker's unsent samples, summed per resolution."""

    def __init__(self) -> None:
        self._sums: dict[tuple[int, int], list[int]] = {}

    def add(self, width: int, height: int, images: int, ms: int) -> None:
        entry = self._sums.setdefault((width, height), [0, 0])
        entry[0] += images
        entry[1] += ms

    def drain(self) -> list[RenderSample]:
        samples = [RenderSample(w, h, n, ms) for (w, h), (n, ms) in self._sums.items()]
        self._sums.clear()
        return samples


class Telemetry:
    """Writes reports to one queue's keys (one Lua call per report)."""

    def __init__(self, redis: Redis, keys: QueueKeys) -> None:
        self._scripts = Scripts(redis)
        self._keys = [keys.render_ms, keys.workers]

    async def record(
        self,
        worker: str,
        samples: Iterable[RenderSample],
        leaving: bool = False,
    ) -> int:
        """Adds the samples and marks the worker live (or gone); returns Redis's now (ms)."""
        args: list[str | int] = [worker, "gone" if leaving else "live", FORGET_WORKER_AFTER_MS]
        for sample in samples:
            args += [f"{sample.width}x{sample.height}", sample.images, sample.ms]
        try:
            (now,) = await self._scripts.run("record_renders", self._keys, args)
        except (RedisError, OSError) as exc:
            raise StorageUnavailable(type(exc).__name__) from exc
        return int(now)
