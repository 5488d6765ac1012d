"""What the API asks before it queues a job: whether an Idempotency-Key already names
one, and how long a new job of this client would wait (SDQ_MAX_WAIT_S)."""

from __future__ import annotations

from redis.exceptions import RedisError

from broker import details
from broker.details import JobDetails
from broker.errors import IdempotencyConflict, StorageUnavailable
from broker.job import Added
from broker.queue import Queue


async def find_once(queue: Queue, digest: str, request: str) -> Added | None:
    """The job an Idempotency-Key added, if it did (IdempotencyConflict when it was for
    another request): asked before a captcha is spent on a replay; add_job checks again,
    atomically with the add."""
    key = queue.keys.idem_for(digest)
    try:
        token, first, created = await queue.redis.hmget(key, ["token", "request", "created_ms"])
    except (RedisError, OSError) as exc:
        raise StorageUnavailable(type(exc).__name__) from exc
    if token is None:
        return None
    if first != request:
        raise IdempotencyConflict(digest)
    return Added(str(token), int(created or 0), replayed=True)


async def wait_estimate(
    queue: Queue, client: str, number: int, width: int, height: int, live_ms: int
) -> JobDetails:
    """The details a new job of `client` would have if it were added now (its place
    and the work ahead, wait_estimate.lua), for the API's ETA; nothing is written."""
    args: list[str | int] = [client, queue.settings.scheduling.value, live_ms]
    reply = await queue.call("wait_estimate", args)
    return details.wait_details(reply, number, width, height)
