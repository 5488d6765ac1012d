"""Watches the Redis server for what loses jobs silently, and says so loudly.

- At start-up and every sweep interval: the queue's epoch (broker/server.py). A
  replica that saw an epoch and then finds none, or another, knows Redis came
  back empty: every queued job is gone and tokens answer 404. It logs an error
  line and counts it (`sdq_redis_came_back_empty_total` on /metrics).
- At start-up and every few minutes: the server's configuration. An eviction
  policy other than noeviction, or no persistence, is a warning in the log and
  in /readyz (which still answers 200: the replica can serve).
"""

from __future__ import annotations

import logging
import time

from broker.errors import StorageUnavailable
from broker.queue import Queue
from broker.server import Epoch, ensure_epoch, server_problems

log = logging.getLogger(__name__)

CONFIG_EVERY_S = 300.0


class ServerWatch:
    def __init__(self, queue: Queue) -> None:
        self._queue = queue
        self.epoch: Epoch | None = None
        self.came_back_empty = 0  # times this process saw Redis lose its data
        self.problems: list[str] = []
        self._checked_config_at = float("-inf")

    async def check(self) -> None:
        """One look at the epoch (and, when due, the configuration). Raises
        StorageUnavailable when Redis does not answer."""
        epoch = await ensure_epoch(self._queue.redis, self._queue.keys.epoch)
        if self.epoch is not None and epoch.id != self.epoch.id:
            self.came_back_empty += 1
            log.error(
                "Redis came back empty: the queue's epoch %s is gone (now %s); every job "
                "queued before is lost, and their tokens answer 404. Check Redis's persistence "
                "(AOF) and its volume.",
                self.epoch.id,
                epoch.id,
            )
        self.epoch = epoch
        if time.monotonic() - self._checked_config_at >= CONFIG_EVERY_S:
            await self._check_config()

    async def _check_config(self) -> None:
        self._checked_config_at = time.monotonic()
        problems = await server_problems(self._queue.redis)
        for problem in problems:
            if problem not in self.problems:
                log.warning("Redis can lose jobs: %s", problem)
        self.problems = problems

    async def check_quietly(self) -> None:
        """`check`, for start-up: a Redis that is down now is the sweeper's to retry."""
        try:
            await self.check()
        except StorageUnavailable as exc:
            log.warning("Redis not checked yet: %s", exc)
