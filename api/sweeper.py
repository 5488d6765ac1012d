"""The periodic sweep that brings back jobs of dead workers.

Every replica runs this loop; a short Redis lock lets one of them sweep per
interval. The sweep script itself is atomic, so even two at once are safe.
"""

from __future__ import annotations

import asyncio
import logging
import secrets

from broker.errors import StorageUnavailable
from broker.queue import Queue

log = logging.getLogger(__name__)


async def sweep_forever(queue: Queue, interval_s: float) -> None:
    owner = secrets.token_hex(8)
    while True:
        await asyncio.sleep(interval_s)
        try:
            await sweep_once(queue, owner, interval_s)
        except StorageUnavailable as exc:
            log.warning("sweep skipped, storage unavailable: %s", exc)


async def sweep_once(queue: Queue, owner: str, interval_s: float) -> bool:
    """Sweeps if no other replica did in this interval; returns whether it swept."""
    lock_ms = max(1, int(interval_s * 1000 * 0.9))
    if not await queue.try_lock(queue.keys.sweep_lock, owner, lock_ms):
        return False
    requeued, failed, unreserved = await queue.requeue_expired()
    if requeued or failed:
        log.info(
            "sweep: %d requeued, %d failed, %d reservations ended", requeued, failed, unreserved
        )
    return True
