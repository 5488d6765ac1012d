"""Server-Sent Events for one job: a `status` event whenever what a person sees changes.

A stream learns of changes by polling: its replica reads the job from Redis
every SDQ_SSE_POLL_S, once for all the streams of that job it serves
(api/v2/watch.py). That needs nothing else: any replica behind the load
balancer can serve any stream, a reconnect may land on another replica, and no
event is lost to a pub/sub message sent while no one listened.

- `id:` is the job's fingerprint (state, attempts, position, progress in images
  and in percent of the steps, the live preview's time, whether a worker is
  live): the same on every replica. Step progress and a new preview change it,
  so while a job renders a `status` event goes out about once a second. A reconnect sends it back as
  Last-Event-ID, and the stream skips a snapshot the client already has; a
  finished job whose last event the client has is answered 204 (stop).
- The ETA counts down on the client; it is sent again only when it drifts from
  that countdown by more than max(2 s, 10 %).
- `: keep-alive` comments flow when nothing else does, so proxies keep the
  connection; after SDQ_SSE_MAX_S the server ends the stream and the browser
  reconnects (with Last-Event-ID), so no connection is held forever.
- The stream ends after the event of a terminal state, or with an event `gone`
  if the job expires meanwhile.
"""

from __future__ import annotations

import contextlib
import json
import time
from collections.abc import AsyncIterator, Awaitable, Callable

from starlette.responses import StreamingResponse

from api.services import Services
from api.v2.models import JobView
from broker.errors import BrokerError
from broker.tokens import new_token

RETRY_MS = 1000
HEADERS = {
    "Cache-Control": "no-cache",
    "X-Accel-Buffering": "no",  # nginx: pass each event on at once
}


class EventStreamResponse(StreamingResponse):
    media_type = "text/event-stream"


def fingerprint(view: JobView) -> str:
    position = "-" if view.position is None else str(view.position)
    live = int(view.workers.available)
    percent = round(view.progress.fraction * 100)
    preview = view.preview.rpartition("=")[2] if view.preview else "-"
    return (
        f"{view.state.value}.{view.attempts}.{position}.{view.progress.done}.{live}"
        f".{percent}.{preview}"
    )


def status_event(view: JobView) -> str:
    return f"id: {fingerprint(view)}\nevent: status\ndata: {view.model_dump_json()}\n\n"


def gone_event(token: str) -> str:
    data = json.dumps({"token": token, "message": "token not found"})
    return f"event: gone\ndata: {data}\n\n"


def eta_drifted(eta: float | None, sent_eta: float | None, elapsed_s: float) -> bool:
    """Whether the client's countdown from the last ETA it got is now too wrong."""
    if eta is None or sent_eta is None:
        return eta != sent_eta
    expected = max(0.0, sent_eta - elapsed_s)
    return abs(eta - expected) > max(2.0, 0.1 * eta)


class JobStream:
    """One client's stream. `next_view` waits for the job's next poll: its view, or
    None once the job is gone."""

    def __init__(
        self,
        next_view: Callable[[], Awaitable[JobView | None]],
        first: JobView,
        last_event_id: str | None,
        keepalive_s: float,
        max_s: float,
    ) -> None:
        self.next_view = next_view
        self.view = first
        self.sent_id = last_event_id
        self.sent_eta: float | None = None
        self.sent_at = 0.0
        self.keepalive_s = keepalive_s
        self.max_s = max_s

    async def events(self) -> AsyncIterator[str]:
        started = last_write = time.monotonic()
        yield f"retry: {RETRY_MS}\n\n"
        while True:
            now = time.monotonic()
            event = self._event_if_changed(now)
            if event is not None:
                last_write = now
                yield event
            if self.view.state.is_terminal or now - started >= self.max_s:
                return
            if now - last_write >= self.keepalive_s:
                last_write = now
                yield ": keep-alive\n\n"
            view = await self.next_view()
            if view is None:
                yield gone_event(self.view.token)
                return
            self.view = view

    def _event_if_changed(self, now: float) -> str | None:
        view = self.view
        changed = fingerprint(view) != self.sent_id
        if not changed and self.sent_id is not None and self.sent_at:
            changed = eta_drifted(view.eta_s, self.sent_eta, now - self.sent_at)
        if not changed:
            return None
        self.sent_id, self.sent_eta, self.sent_at = fingerprint(view), view.eta_s, now
        return status_event(view)


class StreamPlace:
    """The stream's place among its client's open streams (SDQ_MAX_STREAMS_PER_CLIENT,
    counted in Redis across replicas): held at the start, extended while the stream
    lives, given back at its end; a replica that dies leaves holds that run out."""

    HOLD_MS = 60_000
    EXTEND_S = 20.0

    def __init__(self, services: Services, client: str) -> None:
        self.queue = services.queue
        self.client = client
        self.cap = services.abuse.max_streams
        self.id = new_token()
        self.held_at = 0.0

    async def hold(self) -> None:
        if self.cap:
            await self.queue.hold_stream(self.client, self.id, self.cap, self.HOLD_MS)
            self.held_at = time.monotonic()

    async def keep(self) -> None:
        """Extends the hold when due; a Redis outage never ends the stream for it."""
        if self.cap and time.monotonic() - self.held_at >= self.EXTEND_S:
            with contextlib.suppress(BrokerError):
                await self.hold()

    async def release(self) -> None:
        if self.cap:
            with contextlib.suppress(BrokerError):
                await self.queue.release_stream(self.client, self.id)
