"""One reader per job per replica: event streams of the same job share its polls.

Each open stream used to read its job from Redis every SDQ_SSE_POLL_S; 800
streams of one job were 800 reads a second. Now the first stream of a job on a
replica starts one poller for it, every later stream subscribes to it, and the
poller stops when the last one leaves: a replica reads each watched job once per
interval, whatever the number of its streams. Streams of different jobs are
bounded per client (SDQ_MAX_STREAMS_PER_CLIENT, across replicas: api/v2/routes.py).

A Redis outage is logged once per interval for the whole replica, not once per
stream per second.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field

from api.throttled_log import ThrottledLog
from api.v2.models import JobView
from broker.errors import JobNotFound, StorageUnavailable

log = logging.getLogger(__name__)
_throttled = ThrottledLog(log)

GONE = None  # what a watch yields once its job no longer exists


@dataclass(eq=False)
class _Poller:
    """Reads one job every interval and hands each result to its subscribers."""

    load: Callable[[], Awaitable[JobView]]
    poll_s: float
    subscribers: set[asyncio.Queue[JobView | None]] = field(default_factory=set)
    task: asyncio.Task[None] | None = None

    async def run(self) -> None:
        while self.subscribers:
            await asyncio.sleep(self.poll_s)
            try:
                view: JobView | None = await self.load()
            except JobNotFound:
                view = GONE
            except StorageUnavailable as exc:  # the next poll may work; the streams stay
                _throttled.log(
                    logging.WARNING, "poll", "event streams: storage unavailable: %s", exc
                )
                continue
            for queue in self.subscribers:
                if queue.full():  # a slow reader gets the newest view only
                    queue.get_nowait()
                queue.put_nowait(view)
            if view is GONE:
                return


class JobWatches:
    """The pollers of one app (replica), by token."""

    def __init__(self, load: Callable[[str], Awaitable[JobView]], poll_s: float) -> None:
        self._load = load
        self._poll_s = poll_s
        self._pollers: dict[str, _Poller] = {}

    @property
    def polled(self) -> int:
        """Jobs this replica reads for its streams now."""
        return len(self._pollers)

    def subscribe(self, token: str) -> Subscription:
        """A subscription to the job's polls; the first one starts its poller."""
        poller = self._pollers.get(token)
        if poller is None or poller.task is None or poller.task.done():
            poller = self._pollers[token] = _Poller(lambda: self._load(token), self._poll_s)
        subscription = Subscription(self, token, poller)
        poller.subscribers.add(subscription.queue)
        if poller.task is None:
            poller.task = asyncio.create_task(poller.run(), name=f"poll-{token}")
        return subscription

    def _left(self, subscription: Subscription) -> None:
        poller = subscription.poller
        poller.subscribers.discard(subscription.queue)
        if poller.subscribers:
            return
        if self._pollers.get(subscription.token) is poller:
            del self._pollers[subscription.token]
        if poller.task is not None and not poller.task.done():
            poller.task.cancel()


@dataclass(eq=False)
class Subscription:
    """One stream's view of a job's polls."""

    watches: JobWatches
    token: str
    poller: _Poller
    queue: asyncio.Queue[JobView | None] = field(default_factory=lambda: asyncio.Queue(1))

    async def next(self) -> JobView | None:
        """The job's next poll: its view, or GONE."""
        return await self.queue.get()

    def close(self) -> None:
        """Leaves; the last one to leave stops the poller."""
        self.watches._left(self)
