"""Fixtures of the v2 tests: the real app (for streams, which httpx's ASGI transport
would buffer whole), a client on it, and helpers that play a worker through the
broker's own calls."""

from __future__ import annotations

import json
from collections.abc import AsyncGenerator, AsyncIterator, Awaitable, Callable, MutableMapping
from dataclasses import dataclass
from typing import Any

import httpx
import pytest
from fastapi import FastAPI
from redis.asyncio import Redis

from api.app import create_app
from api.settings import ApiSettings
from broker.queue import Queue
from broker.renders import RenderSample

MakeApp = Callable[..., Awaitable[FastAPI]]


@pytest.fixture
async def make_app(redis: Redis, settings: ApiSettings) -> AsyncIterator[MakeApp]:
    """Builds apps on the test's Redis with setting overrides; runs their lifespans."""
    contexts = []

    async def make(**overrides: Any) -> FastAPI:
        app = create_app(settings.model_copy(update=overrides), redis=redis)
        context = app.router.lifespan_context(app)
        await context.__aenter__()
        contexts.append(context)
        return app

    yield make
    for context in reversed(contexts):
        await context.__aexit__(None, None, None)


def http(app: FastAPI) -> httpx.AsyncClient:
    transport = httpx.ASGITransport(app=app, client=("203.0.113.7", 50000))
    return httpx.AsyncClient(transport=transport, base_url="http://sdq.test")


async def submit(client: httpx.AsyncClient, **fields: Any) -> str:
    body = {"prompt": "hello world", "number": 2, "resolution": "576x576", **fields}
    body.setdefault("captcha", "good-v2")
    reply = await client.post("/v2/jobs", json=body)
    assert reply.status_code == 201, reply.text
    return str(reply.json()["token"])


async def report(queue: Queue, worker: str, *renders: tuple[int, int, int, int]) -> None:
    """A worker's render-time report, through the broker call workers use."""
    samples = [RenderSample(w, h, images, ms) for w, h, images, ms in renders]
    await queue.record_renders(worker, samples)


@dataclass
class Event:
    kind: str  # "status", "gone", or "comment"
    id: str | None
    data: Any


class EventStream:
    """Drives the app's ASGI callable directly and parses the event stream as it flows."""

    def __init__(self, app: FastAPI, path: str, headers: dict[str, str] | None = None) -> None:
        self.app = app
        self.path = path
        self.headers = headers or {}
        self.status = 0
        self.response_headers: dict[str, str] = {}
        self.retry: int | None = None
        self.closed = False
        self._buffer = ""

    async def events(self) -> AsyncGenerator[Event, None]:
        import asyncio

        chunks: asyncio.Queue[bytes | None] = asyncio.Queue()
        disconnect = asyncio.Event()

        async def receive() -> dict[str, Any]:
            await disconnect.wait()
            return {"type": "http.disconnect"}

        async def send(message: MutableMapping[str, Any]) -> None:
            if message["type"] == "http.response.start":
                self.status = message["status"]
                self.response_headers = {
                    k.decode().lower(): v.decode() for k, v in message["headers"]
                }
            elif message["type"] == "http.response.body":
                await chunks.put(message.get("body", b""))
                if not message.get("more_body", False):
                    await chunks.put(None)

        scope = {
            "type": "http",
            "asgi": {"version": "3.0", "spec_version": "2.3"},
            "http_version": "1.1",
            "method": "GET",
            "scheme": "http",
            "path": self.path,
            "raw_path": self.path.encode(),
            "root_path": "",
            "query_string": b"",
            "headers": [(k.lower().encode(), v.encode()) for k, v in self.headers.items()],
            "client": ("203.0.113.7", 50000),
            "server": ("sdq.test", 80),
            "state": {},
        }
        task = asyncio.create_task(self.app(scope, receive, send))
        try:
            while True:
                chunk = await chunks.get()
                if chunk is None:
                    self.closed = True
                    return
                self._buffer += chunk.decode()
                while "\n\n" in self._buffer:
                    block, self._buffer = self._buffer.split("\n\n", 1)
                    event = self._parse(block)
                    if event is not None:
                        yield event
        finally:
            disconnect.set()
            await task

    def _parse(self, block: str) -> Event | None:
        kind, event_id, data = "message", None, []
        for line in block.split("\n"):
            name, _, value = line.partition(":")
            value = value.removeprefix(" ")
            if name == "":
                return Event("comment", None, value)
            if name == "retry":
                self.retry = int(value)
                return None
            if name == "event":
                kind = value
            elif name == "id":
                event_id = value
            elif name == "data":
                data.append(value)
        return Event(kind, event_id, json.loads("\n".join(data)) if data else None)
