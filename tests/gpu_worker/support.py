"""Renderers and stores for worker tests: real implementations of the protocols,
made observable (they count) or made to fail on purpose."""

from __future__ import annotations

import threading
from collections import Counter

from gpu_worker.renderers.base import RenderRequest


def payload(token: str, index: int) -> bytes:
    """What CountingRenderer draws: enough to prove an image landed at its own key."""
    return b"\x89PNG-test " + f"{token}/{index:05d}".encode()


class CountingRenderer:
    """Zero-cost renderer that counts every image it renders (thread-safe).
    With `gate`, each render waits until the gate is opened (a job held mid-render)."""

    name = "counting"

    def __init__(self, gate: threading.Event | None = None) -> None:
        self.renders: Counter[tuple[str, int]] = Counter()
        self.order: list[str] = []
        self.gate = gate
        self.started = threading.Event()
        self._lock = threading.Lock()

    def render(self, request: RenderRequest) -> list[bytes]:
        with self._lock:
            self.order.append(request.token)
            for index in request.indexes:
                self.renders[(request.token, index)] += 1
        self.started.set()
        if self.gate is not None:
            self.gate.wait(timeout=30)
        return [payload(request.token, index) for index in request.indexes]


class FailingRenderer:
    """Fails like a GPU out of memory, every time."""

    name = "failing"

    def __init__(self) -> None:
        self.calls = 0

    def render(self, request: RenderRequest) -> list[bytes]:
        self.calls += 1
        raise RuntimeError("CUDA out of memory. Tried to allocate 2.00 GiB")


class MemoryStore:
    """Keeps images in a dict; `failures` puts fail first (an S3 outage)."""

    def __init__(self, failures: int = 0) -> None:
        self.images: dict[str, bytes] = {}
        self.failures = failures
        self.puts = 0

    def put(self, token: str, index: int, png: bytes) -> None:
        self.puts += 1
        if self.failures > 0:
            self.failures -= 1
            raise ConnectionError("storage endpoint unreachable")
        self.images[f"{token}/{index:05d}.png"] = png
