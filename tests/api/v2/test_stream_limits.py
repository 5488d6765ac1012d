"""What one client can cost the replicas through v2 reads (issue: 800 event streams from
one client saturated Redis and slowed everyone's /getJobStatus 30-fold).

- A replica reads a streamed job once per poll however many streams show it.
- A client holds at most SDQ_MAX_STREAMS_PER_CLIENT streams, across replicas.
- v2 reads are rated per client (SDQ_V2_READ_RATE).
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator

import httpx
import pytest
from fastapi import FastAPI
from redis.asyncio import Redis

from api.app import create_app
from api.settings import ApiSettings
from broker.queue import Queue
from sdq.embedded_redis import EmbeddedRedis
from tests.api.v2.conftest import Event, EventStream, MakeApp, http, submit

FAST = {"sse_poll_s": 0.02, "sse_keepalive_s": 60.0}


async def first_event(stream: EventStream) -> AsyncIterator[Event]:
    events = stream.events()
    async for event in events:
        if event.kind == "status":
            break
    return events


@contextlib.asynccontextmanager
async def open_streams(app: FastAPI, token: str, count: int) -> AsyncIterator[list[EventStream]]:
    streams = [EventStream(app, f"/v2/jobs/{token}/events") for _ in range(count)]
    iterators = [await first_event(stream) for stream in streams]
    try:
        yield streams
    finally:
        for events in iterators:
            await events.aclose()


async def test_many_streams_of_one_job_share_one_poller(
    make_app: MakeApp, queue: Queue, monkeypatch: pytest.MonkeyPatch
) -> None:
    app = await make_app(**FAST, max_streams_per_client=0)
    async with http(app) as client:
        token = await submit(client)
    reads = 0
    original = Queue.job_details

    async def counted(self: Queue, *args: object, **kwargs: object) -> object:
        nonlocal reads
        reads += 1
        return await original(self, *args, **kwargs)  # type: ignore[arg-type]

    async with open_streams(app, token, 40):
        monkeypatch.setattr(Queue, "job_details", counted)
        await asyncio.sleep(0.5)  # ~25 polls
        assert app.state.v2.watches.polled == 1
    assert 5 <= reads <= 40  # one read per poll, not one per stream per poll (~1,000)
    await asyncio.sleep(0.05)
    assert app.state.v2.watches.polled == 0  # the last stream stopped its poller


async def test_a_client_past_its_stream_cap_gets_429_across_replicas(
    make_app: MakeApp,
) -> None:
    one, two = (
        await make_app(**FAST, max_streams_per_client=3),
        await make_app(**FAST, max_streams_per_client=3),
    )
    async with http(one) as client:
        token = await submit(client)
    async with open_streams(one, token, 2), open_streams(two, token, 1):
        refused = EventStream(two, f"/v2/jobs/{token}/events")
        events = refused.events()
        with contextlib.suppress(StopAsyncIteration):
            await events.__anext__()
        await events.aclose()
        assert refused.status == 429
        async with http(two) as client:  # a plain read is not a stream
            assert (await client.get(f"/v2/jobs/{token}")).status_code == 200
    async with open_streams(two, token, 3):  # closed streams gave their places back
        pass


async def test_v2_reads_past_the_clients_rate_get_429_with_retry_after(make_app: MakeApp) -> None:
    app = await make_app(v2_read_rate="3/minute")
    async with http(app) as client:
        token = await submit(client)
        codes = [(await client.get(f"/v2/jobs/{token}")).status_code for _ in range(2)]
        codes.append((await client.get(f"/v2/jobs/{token}/preview")).status_code)  # none yet
        refused = await client.get(f"/v2/jobs/{token}")
    assert codes == [200, 200, 404]  # a preview read counts like any other
    assert refused.status_code == 429
    assert refused.json() == {"errors": [{"field": None, "message": "too many requests"}]}
    assert 1 <= int(refused.headers["retry-after"]) <= 60


async def test_the_stream_cap_answers_in_the_v2_shape(make_app: MakeApp) -> None:
    app = await make_app(**FAST, max_streams_per_client=1)
    async with http(app) as client:
        token = await submit(client)
    async with open_streams(app, token, 1):
        transport = httpx.ASGITransport(app=app, client=("203.0.113.7", 50000))
        async with httpx.AsyncClient(transport=transport, base_url="http://sdq.test") as c:
            refused = await c.get(f"/v2/jobs/{token}/events")
    assert refused.status_code == 429
    assert refused.json() == {"errors": [{"field": None, "message": "too many event streams"}]}
    assert refused.headers["retry-after"] == "5"


async def test_a_redis_outage_is_logged_once_per_interval_not_once_per_stream(
    settings: ApiSettings, caplog: pytest.LogCaptureFixture
) -> None:
    engine = EmbeddedRedis().start()
    redis = Redis.from_url(engine.url, decode_responses=True, socket_timeout=0.5)
    app = create_app(settings.model_copy(update={**FAST, "max_streams_per_client": 0}), redis=redis)
    try:
        async with app.router.lifespan_context(app):
            async with http(app) as client:
                tokens = [await submit(client, captcha=f"good-{i}") for i in range(20)]
            streams = [EventStream(app, f"/v2/jobs/{token}/events") for token in tokens]
            iterators = [await first_event(stream) for stream in streams]
            caplog.clear()
            engine.kill()
            await asyncio.sleep(1.5)  # 20 pollers x ~40 failed polls each
            outage = "event streams: storage unavailable"
            warnings = [r for r in caplog.records if outage in r.getMessage()]
            assert 1 <= len(warnings) <= 2
            for events in iterators:
                await events.aclose()
    finally:
        await redis.aclose()
        engine.stop()
