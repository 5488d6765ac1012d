"""GET /v2/jobs/{token}/events: Server-Sent Events of a job, read as they flow."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

import pytest
from fastapi import FastAPI

from broker.queue import Queue
from tests.api.v2.conftest import Event, EventStream, MakeApp, http, report, submit

FAST = {"sse_poll_s": 0.01, "sse_keepalive_s": 60.0}


async def next_status(events: AsyncIterator[Event]) -> Event:
    async for event in events:
        if event.kind != "comment":
            return event
    raise AssertionError("the stream ended")


async def test_v2_events_push_each_change_until_the_job_is_complete(
    make_app: MakeApp, queue: Queue
) -> None:
    app: FastAPI = await make_app(**FAST)
    await report(queue, "gpu-1", (576, 576, 1, 1000))
    async with http(app) as client:
        ahead = await submit(client, number=2)
        token = await submit(client, number=2)
    stream = EventStream(app, f"/v2/jobs/{token}/events")
    events = stream.events()

    first = await next_status(events)
    assert stream.status == 200
    assert stream.response_headers["content-type"].startswith("text/event-stream")
    assert stream.response_headers["cache-control"] == "no-cache"
    assert stream.retry == 1000
    assert (first.kind, first.data["state"], first.data["position"]) == ("status", "new", 1)
    assert first.data["eta_s"] == 4.0
    assert first.id == "new.0.1.0.1.0.-"

    claim = await queue.claim("gpu-1")
    assert claim is not None and claim.job.token == ahead
    await queue.complete(ahead, claim.fence)
    moved = await next_status(events)
    assert (moved.data["state"], moved.data["position"]) == ("new", 0)

    claim = await queue.claim("gpu-1")
    assert claim is not None and claim.job.token == token
    started = await next_status(events)
    assert (started.data["state"], started.data["progress"]["done"]) == ("pending", 0)
    await queue.renew_lease(token, claim.fence, progress=1)
    halfway = await next_status(events)
    assert halfway.data["progress"] == {"done": 1, "total": 2, "fraction": 0.5}
    assert halfway.data["eta_s"] == 1.0

    await queue.complete(token, claim.fence)
    done = await next_status(events)
    assert done.data["state"] == "complete"
    assert done.id == "complete.0.-.2.1.100.-"
    assert done.data["progress"] == {"done": 2, "total": 2, "fraction": 1.0}
    with pytest.raises(StopAsyncIteration):
        await anext(events)
    assert stream.closed


async def test_v2_events_reconnect_with_last_event_id_skips_what_the_client_has(
    make_app: MakeApp, queue: Queue
) -> None:
    app: FastAPI = await make_app(**FAST)
    async with http(app) as client:
        token = await submit(client)
    first = await next_status(EventStream(app, f"/v2/jobs/{token}/events").events())

    resumed = EventStream(app, f"/v2/jobs/{token}/events", {"Last-Event-ID": first.id or ""})
    events = resumed.events()
    reader = asyncio.ensure_future(next_status(events))
    await asyncio.sleep(0.1)  # several polls: none may repeat the snapshot the client has
    assert not reader.done()
    async with http(app) as client:
        await client.delete(f"/v2/jobs/{token}")
    event = await reader
    assert event.data["state"] == "cancelled"
    await events.aclose()


async def test_v2_events_of_a_finished_job_the_client_has_seen_answer_204(
    make_app: MakeApp, queue: Queue
) -> None:
    app: FastAPI = await make_app(**FAST)
    async with http(app) as client:
        token = await submit(client)
        await client.delete(f"/v2/jobs/{token}")
    last = await next_status(EventStream(app, f"/v2/jobs/{token}/events").events())
    assert last.data["state"] == "cancelled"
    again = EventStream(app, f"/v2/jobs/{token}/events", {"Last-Event-ID": last.id or ""})
    assert [event async for event in again.events()] == []
    assert again.status == 204


async def test_v2_events_send_keep_alive_comments_while_nothing_changes(
    make_app: MakeApp, queue: Queue
) -> None:
    app: FastAPI = await make_app(sse_poll_s=0.01, sse_keepalive_s=0.02)
    async with http(app) as client:
        token = await submit(client)
    events = EventStream(app, f"/v2/jobs/{token}/events").events()
    assert (await anext(events)).kind == "status"
    comment = await anext(events)
    assert (comment.kind, comment.data) == ("comment", "keep-alive")
    await events.aclose()


async def test_v2_events_end_after_the_longest_stream_time_for_the_client_to_reconnect(
    make_app: MakeApp, queue: Queue
) -> None:
    app: FastAPI = await make_app(sse_poll_s=0.01, sse_max_s=0.05)
    async with http(app) as client:
        token = await submit(client)
    stream = EventStream(app, f"/v2/jobs/{token}/events")
    events = [event async for event in stream.events()]
    assert [event.kind for event in events if event.kind != "comment"] == ["status"]
    assert stream.closed


async def test_v2_events_say_gone_when_the_job_disappears(make_app: MakeApp, queue: Queue) -> None:
    app: FastAPI = await make_app(**FAST)
    async with http(app) as client:
        token = await submit(client)
    events = EventStream(app, f"/v2/jobs/{token}/events").events()
    assert (await anext(events)).kind == "status"
    await queue.redis.delete(queue.keys.job(token))  # as if its retention ran out
    gone = await next_status(events)
    assert (gone.kind, gone.data) == ("gone", {"token": token, "message": "token not found"})
    with pytest.raises(StopAsyncIteration):
        await anext(events)


async def test_v2_events_of_an_unknown_token_are_404(make_app: MakeApp) -> None:
    app: FastAPI = await make_app(**FAST)
    async with http(app) as client:
        reply = await client.get(f"/v2/jobs/{'ab' * 16}/events")
    assert reply.status_code == 404
    assert reply.json() == {"errors": [{"field": "token", "message": "token not found"}]}
