"""The periodic sweep that brings back jobs of dead workers.

Every replica runs this loop; a short Redis lock lets one of them sweep per
interval. The sweep script itself is atomic, so even two at once are safe.
One script call handles at most SDQ_SWEEP_LIMIT expired leases (so it never
blocks Redis for long); when a call finds a full batch, the sweep calls again
at once, so thousands of leases that expired together (a rack lost power) come
back within one interval, not one batch per interval. Index entries of jobs whose
hash is gone count towards a full batch like any other (the script drops them);
when one of them left the image sums to be counted again, the sweep asks for the
queue's figures, which counts them once.
"""

from __future__ import annotations

import asyncio
import logging
import secrets

from api.server_watch import ServerWatch
from api.throttled_log import ThrottledLog
from broker.errors import StorageUnavailable
from broker.queue import Queue

log = logging.getLogger(__name__)
_throttled = ThrottledLog(log)
MAX_BATCHES = 1000  # per interval: 100,000 leases at the default limit


async def sweep_forever(queue: Queue, interval_s: float, server: ServerWatch) -> None:
    """Every interval: the sweep (one replica) and a look at the server (every replica)."""
    owner = secrets.token_hex(8)
    while True:
        await asyncio.sleep(interval_s)
        try:
            await server.check()
            await sweep_once(queue, owner, interval_s)
        except StorageUnavailable as exc:
            _throttled.log(logging.WARNING, "sweep", "sweep skipped, storage unavailable: %s", exc)


async def sweep_once(queue: Queue, owner: str, interval_s: float) -> bool:
    """Sweeps if no other replica did in this interval; returns whether it swept."""
    lock_ms = max(1, int(interval_s * 1000 * 0.9))
    if not await queue.try_lock(queue.keys.sweep_lock, owner, lock_ms):
        return False
    totals = [0, 0, 0, 0]
    recount = False
    for _ in range(MAX_BATCHES):
        batch = await queue.requeue_expired()
        totals = [a + b for a, b in zip(totals, (*batch.counts, batch.dropped), strict=True)]
        recount = batch.recount
        if not batch.full:
            break
    if recount:  # the image sums are counted again, job by job, once (queue_figures.lua)
        await queue.figures()
    requeued, failed, unreserved, dropped = totals
    if requeued or failed or dropped:
        log.info(
            "sweep: %d requeued, %d failed, %d reservations ended, %d entries of lost jobs dropped",
            requeued,
            failed,
            unreserved,
            dropped,
        )
    return True
