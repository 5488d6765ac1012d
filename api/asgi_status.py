"""Notes the status of the response a wrapped ASGI app sends (for logs and metrics)."""

from __future__ import annotations

from starlette.types import Message, Send


class StatusRecorder:
    """A `send` that passes every message on and remembers the response status.

    The status stays 500 when the app fails before starting a response, which is
    what the server then answers."""

    def __init__(self, send: Send) -> None:
        self._send = send
        self.status = 500

    async def __call__(self, message: Message) -> None:
        if message["type"] == "http.response.start":
            self.status = message["status"]
        await self._send(message)
