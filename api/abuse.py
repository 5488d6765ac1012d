"""Per-client limits: what one address (an IPv6 network) may ask of every replica.

    adds            /addJob and POST /v2/jobs per client (SDQ_ADDJOB_RATE)
    open jobs       unfinished jobs per client (SDQ_MAX_OPEN_JOBS_PER_CLIENT)
    reads           v2 reads per client (SDQ_V2_READ_RATE)
    streams         open v2 event streams per client (SDQ_MAX_STREAMS_PER_CLIENT)
    auth failures   wrong backend secrets per client (SDQ_BACKEND_AUTH_FAILURES)

All are kept in Redis, so they hold across every replica: the rates by the
`limits` library (api/rate_limits.py), the caps by the queue's scripts.

Order of a submit (api/submit.py: /addJob and POST /v2/jobs): the parameters
are checked first (no I/O: a malformed request costs nothing and is not
counted); then the rate is counted; then one of the client's open-job slots is
held for the new token; only then is the captcha verified, and add_job turns
the held slot into the job. So a captcha is never verified for a request that
the limits refuse, and a request that fails the captcha still counts against
the rate (guessing costs).

A wrong backend secret counts against the client's auth-failure rate; past it,
every secret the client sends is refused (429) until the window passes, so the
secret cannot be guessed at request speed. A client with no recent failure on
this replica costs no Redis call at all: the common case, a worker polling with
the right secret, stays on the hot path's single round trip.
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass

from limits.aio.storage import Storage

from api.auth import BackendSecrets
from api.rate_limits import RateLimit, close_rate_storage
from api.settings import ApiSettings
from broker.errors import StorageUnavailable
from broker.queue import Queue

log = logging.getLogger(__name__)

SUSPECT_S = 3600.0  # how long this replica checks a client that failed to authenticate
MAX_SUSPECTS = 100_000


@dataclass(frozen=True, slots=True)
class AbuseLimits:
    rate: str  # `limits` syntax, "" = no rate limit
    max_open: int  # open jobs per client, 0 = no cap
    hold_ms: int  # how long a slot stays held while the captcha is checked
    reads: str = ""
    auth_failures: str = ""
    max_streams: int = 0  # 0 = no cap
    max_images: int = 0  # images in a client's open jobs, 0 = no cap

    @classmethod
    def from_settings(cls, settings: ApiSettings) -> AbuseLimits:
        """A held slot outlives the longest captcha check by a margin."""
        hold_ms = int((settings.hcaptcha_timeout_s + 10) * 1000)
        return cls(
            settings.addjob_rate,
            settings.max_open_jobs_per_client,
            hold_ms,
            settings.v2_read_rate,
            settings.backend_auth_failures,
            settings.max_streams_per_client,
            settings.max_images_per_client,
        )


class AbuseGuard:
    """Counts requests, open jobs and failed authentications per client key
    (api/client_address.py)."""

    def __init__(self, queue: Queue, limits: AbuseLimits, storage: Storage) -> None:
        self._queue = queue
        self._limits = limits
        self._storage = storage
        self._adds = RateLimit(storage, "addJob", limits.rate)
        self._reads = RateLimit(storage, "v2read", limits.reads)
        self._auth = RateLimit(storage, "authFailure", limits.auth_failures)
        self._suspects: dict[str, float] = {}  # client key -> last failure (monotonic)

    async def aclose(self) -> None:
        await close_rate_storage(self._storage)

    @property
    def max_open(self) -> int:
        return self._limits.max_open

    @property
    def max_streams(self) -> int:
        return self._limits.max_streams

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
        await self._adds.hit(client_key)
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

    async def read(self, client_key: str) -> None:
        """Counts one v2 read; raises RateLimited past SDQ_V2_READ_RATE."""
        await self._reads.hit(client_key)

    async def authenticate(self, secrets: BackendSecrets, secret: str, client_key: str) -> bool:
        """Whether `secret` is a backend secret. Raises RateLimited for a client past its
        auth-failure rate, whatever it sent (so a right guess is refused too)."""
        if not self._auth.enabled:
            return secrets.accepts(secret)
        failed_at = self._suspects.get(client_key)
        if failed_at is not None and time.monotonic() - failed_at < SUSPECT_S:
            await self._auth.check(client_key)
        if secrets.accepts(secret):
            return True
        if len(self._suspects) >= MAX_SUSPECTS:
            self._suspects.clear()  # the limits in Redis still hold; only the shortcut resets
        self._suspects[client_key] = time.monotonic()
        await self._auth.hit(client_key)
        return False
