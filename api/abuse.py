"""Limits on /addJob per client: a request rate, and a cap on unfinished jobs.

Both are kept in Redis, so they hold across every worker and replica. The rate
is counted by the `limits` library (moving window, one Lua call per limit) on
the queue's own connection pool; the cap by the queue's scripts (a client's
zset of open jobs, see broker/keys.py).

Order of a submit (api/submit.py: /addJob and POST /v2/jobs): the parameters
are checked first (no I/O: a malformed request costs nothing and is not
counted); then the rate is counted; then one of the client's open-job slots is
held for the new token; only then is the captcha verified, and add_job turns
the held slot into the job. So a captcha is never verified for a request that
the limits refuse, and a request that fails the captcha still counts against the
rate (guessing costs).
"""

from __future__ import annotations

import logging
import math
import time
from dataclasses import dataclass

from limits import RateLimitItem, parse_many
from limits.aio.storage import RedisStorage
from limits.aio.strategies import MovingWindowRateLimiter
from redis.asyncio import Redis
from redis.exceptions import RedisError

from api.errors import RateLimited
from api.settings import ApiSettings
from broker.errors import StorageUnavailable
from broker.queue import Queue

log = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True)
class AbuseLimits:
    rate: str  # `limits` syntax, "" = no rate limit
    max_open: int  # open jobs per client, 0 = no cap
    hold_ms: int  # how long a slot stays held while the captcha is checked
    max_images: int = 0  # images in a client's open jobs, 0 = no cap

    @classmethod
    def from_settings(cls, settings: ApiSettings) -> AbuseLimits:
        """A held slot outlives the longest captcha check by a margin."""
        hold_ms = int((settings.hcaptcha_timeout_s + 10) * 1000)
        return cls(
            settings.addjob_rate,
            settings.max_open_jobs_per_client,
            hold_ms,
            settings.max_images_per_client,
        )


class AbuseGuard:
    """Counts /addJob requests and open jobs per client key (api/client_address.py)."""

    def __init__(self, queue: Queue, limits: AbuseLimits) -> None:
        self._queue = queue
        self._limits = limits
        self._items: list[RateLimitItem] = parse_many(limits.rate) if limits.rate else []
        self._limiter: MovingWindowRateLimiter | None = None
        if self._items:
            if not isinstance(queue.redis, Redis):  # ApiSettings refuses it at start-up
                raise ValueError("SDQ_ADDJOB_RATE needs one Redis server, not SDQ_REDIS_CLUSTER")
            storage = RedisStorage(
                "async+redis://",  # unused: the queue's pool (TLS, password, Sentinel) is
                implementation="redispy",
                key_prefix=queue.keys.limits_prefix,
                # limits documents `connection_pool` but types its **options as scalars
                connection_pool=queue.redis.connection_pool,  # type: ignore[arg-type]
            )
            self._limiter = MovingWindowRateLimiter(storage)

    @property
    def max_open(self) -> int:
        return self._limits.max_open

    @property
    def max_images(self) -> int:
        return self._limits.max_images

    @property
    def _holds(self) -> bool:
        return self._limits.max_open > 0 or self._limits.max_images > 0

    async def admit(self, client_key: str, token: str, number: int = 1) -> None:
        """Counts the request and holds an open-job slot for `token` (a job of `number`
        images), before the captcha.

        Raises RateLimited, TooManyOpenJobs, TooManyOpenImages (broker) or
        StorageUnavailable."""
        await self._count_rate(client_key)
        if self._holds:
            limits = self._limits
            await self._queue.hold_client_slot(
                client_key, token, limits.max_open, limits.hold_ms, number, limits.max_images
            )

    async def release(self, client_key: str, token: str) -> None:
        """Gives back the slot of a request that added no job (captcha failed, queue full)."""
        if self._holds:
            try:
                await self._queue.release_client_slot(client_key, token)
            except StorageUnavailable as exc:  # the hold ends by itself after hold_ms
                log.warning("open-jobs slot not released: %s", exc, extra={"token": token})

    async def _count_rate(self, client_key: str) -> None:
        if self._limiter is None:
            return
        try:
            for item in self._items:
                if not await self._limiter.hit(item, "addJob", client_key):
                    stats = await self._limiter.get_window_stats(item, "addJob", client_key)
                    retry_after = max(1, math.ceil(stats.reset_time - time.time()))
                    raise RateLimited(retry_after)
        except (RedisError, OSError) as exc:
            raise StorageUnavailable(type(exc).__name__) from exc
