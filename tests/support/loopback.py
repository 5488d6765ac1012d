"""A loopback HTTP server for the HTTP client tests (the worker's, hCaptcha's): it
answers byte for byte (each answer in one write), records what it got, and can
misbehave on purpose."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable

OK = b'HTTP/1.1 200 OK\r\ncontent-type: application/json\r\ncontent-length: 5\r\n\r\n"ok"\n'

Handler = Callable[[asyncio.StreamReader, asyncio.StreamWriter], Awaitable[None]]
Answer = Callable[[bytes], bytes | None]


async def read_request(reader: asyncio.StreamReader) -> bytes:
    head = await reader.readuntil(b"\r\n\r\n")
    length = 0
    for line in head.split(b"\r\n"):
        name, _, value = line.partition(b":")
        if name.lower() == b"content-length":
            length = int(value)
    return head + await reader.readexactly(length)


class LoopbackServer:
    """A TCP server on 127.0.0.1 running `handler` per connection; counts connections
    and keeps the requests that `scripted` handlers read."""

    def __init__(
        self, handler: Handler | None = None, answer: Answer = lambda r: OK, path: str = ""
    ) -> None:
        self.handler = handler or self.scripted
        self.path = path
        self.answer = answer
        self.requests: list[bytes] = []
        self.connections = 0
        self.url = ""
        self._server: asyncio.Server | None = None

    async def __aenter__(self) -> LoopbackServer:
        self._server = await asyncio.start_server(self._serve, "127.0.0.1", 0)
        port = self._server.sockets[0].getsockname()[1]
        self.url = f"http://127.0.0.1:{port}{self.path}"
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        assert self._server is not None
        self._server.close()
        await self._server.wait_closed()

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.connections += 1
        try:
            await self.handler(reader, writer)
        except (asyncio.IncompleteReadError, ConnectionError):
            pass
        finally:
            writer.close()

    async def scripted(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        """Answers each request with `answer(request)`; None: hang up without answering."""
        while True:
            reply = self.answer(await self.read(reader))
            if reply is None:
                return
            writer.write(reply)
            await writer.drain()

    async def read(self, reader: asyncio.StreamReader) -> bytes:
        """Reads one request and keeps it in `requests`."""
        request = await read_request(reader)
        self.requests.append(request)
        return request
