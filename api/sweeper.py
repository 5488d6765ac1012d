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

Where the API serves a local image folder (SDQ_IMAGES_DIR) that it may write,
the replica that swept also deletes the images of finished jobs that are due
(broker/image_gc.py): a complete job's at its retention end, a cancelled or
failed job's at once. A read-only mount (compose mounts it so) leaves that to
the workers that write the folder.
"""

from __future__ import annotations

import asyncio
import logging
import secrets
from pathlib import Path

from api.server_watch import ServerWatch
from api.throttled_log import ThrottledLog
from broker.errors import StorageUnavailable
from broker.image_gc import can_collect, collect
from broker.queue import Queue

log = logging.getLogger(__name__)
_throttled = ThrottledLog(log)
MAX_BATCHES = 1000  # per interval: 100,000 leases at the default limit


async def sweep_forever(
    queue: Queue, interval_s: float, server: ServerWatch, images_dir: Path | None = None
) -> None:
    """Every interval: the sweep (one replica) and a look at the server (every replica);
    the replica that swept deletes the due images of `images_dir` where it may."""
    owner = secrets.token_hex(8)
    while True:
        await asyncio.sleep(interval_s)
        try:
            await server.check()
            swept = await sweep_once(queue, owner, interval_s)
            if swept and images_dir is not None and can_collect(images_dir):
                await collect(queue, images_dir)
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
