"""The ceiling of the benchmark: a bare ASGI app doing one EVALSHA per request.

No framework, no parsing, no validation: whatever the real app reaches is
measured as a fraction of this, under the same uvicorn settings and on the same
Redis engine, so noise from other processes hits both sides alike.

    SDQ_REDIS_URL=redis://... uvicorn --factory bench.ceiling:create_app
"""

from __future__ import annotations

import os
from typing import Any

from redis.asyncio import Redis

CEILING_KEY = "{bench-ceiling}:value"
# A read of one small key, about what get_status.lua costs Redis at depth 0.
_SCRIPT = "return redis.call('GET', KEYS[1])"
_HEADERS = [(b"content-type", b"application/json")]

Scope = dict[str, Any]
Message = dict[str, Any]


class Ceiling:
    def __init__(self, redis_url: str) -> None:
        self._redis_url = redis_url
        self._redis: Redis | None = None
        self._sha = ""

    async def __call__(self, scope: Scope, receive: Any, send: Any) -> None:
        if scope["type"] == "lifespan":
            await self._lifespan(receive, send)
            return
        assert self._redis is not None
        value = await self._redis.evalsha(self._sha, 1, CEILING_KEY)
        body = b'"' + (value or b"") + b'"\n'
        headers = [*_HEADERS, (b"content-length", str(len(body)).encode())]
        await send({"type": "http.response.start", "status": 200, "headers": headers})
        await send({"type": "http.response.body", "body": body})

    async def _lifespan(self, receive: Any, send: Any) -> None:
        while True:
            message: Message = await receive()
            if message["type"] == "lifespan.startup":
                self._redis = Redis.from_url(self._redis_url)
                self._sha = await self._redis.script_load(_SCRIPT)
                await self._redis.set(CEILING_KEY, "ceiling")
                await send({"type": "lifespan.startup.complete"})
            elif message["type"] == "lifespan.shutdown":
                if self._redis is not None:
                    await self._redis.aclose()
                await send({"type": "lifespan.shutdown.complete"})
                return


def create_app() -> Ceiling:
    return Ceiling(os.environ.get("SDQ_REDIS_URL", "redis://127.0.0.1:6379/0"))
