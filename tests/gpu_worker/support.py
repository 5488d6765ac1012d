"""Renderers and stores for worker tests: real implementations of the protocols,
made observable (they count) or made to fail on purpose."""

from __future__ import annotations

import io
import threading
import time
from collections import Counter

from PIL import Image

from gpu_worker.renderers.base import RenderedImage, RenderRequest, StepHook, no_hook
from gpu_worker.storage.base import Guard, Staged


def rendered(token: str, index: int) -> RenderedImage:
    """What CountingRenderer draws: a tiny image whose text names its token and index."""
    return RenderedImage(
        Image.new("RGB", (8, 8), (index * 10 % 256, 0, 0)),
        {"sdq:token": token, "sdq:index": str(index)},
    )


def png_text(png: bytes) -> dict[str, str]:
    image = Image.open(io.BytesIO(png))
    image.load()
    return dict(image.text)  # type: ignore[attr-defined]  # PngImageFile's


def names(images: dict[str, bytes]) -> dict[str, str]:
    """key -> '<token>/<index>' read from each stored PNG: proves it landed at its key."""
    return {
        key: f"{text['sdq:token']}/{int(text['sdq:index']):05d}"
        for key, text in ((key, png_text(png)) for key, png in images.items())
    }


class CountingRenderer:
    """Zero-cost renderer that counts every image it renders (thread-safe).
    With `gate`, each render waits until the gate is opened (a job held mid-render).
    With `steps`, it reports that many steps, `step_s` apart."""

    name = "counting"

    def __init__(
        self, gate: threading.Event | None = None, steps: int = 1, step_s: float = 0.0
    ) -> None:
        self.renders: Counter[tuple[str, int]] = Counter()
        self.order: list[str] = []
        self.gate = gate
        self.steps = steps
        self.step_s = step_s
        self.steps_done = 0
        self.started = threading.Event()
        self._lock = threading.Lock()

    def render(self, request: RenderRequest, on_step: StepHook = no_hook) -> list[RenderedImage]:
        with self._lock:
            self.order.append(request.token)
            for index in request.indexes:
                self.renders[(request.token, index)] += 1
        self.started.set()
        if self.gate is not None:
            self.gate.wait(timeout=30)
        for step in range(1, self.steps + 1):
            time.sleep(self.step_s)
            self.steps_done += 1
            on_step(step, self.steps, lambda: Image.new("RGB", (64, 48), (0, 0, 255)))
        return [rendered(request.token, index) for index in request.indexes]


class FailingRenderer:
    """Fails like a GPU out of memory, every time."""

    name = "failing"

    def __init__(self) -> None:
        self.calls = 0

    def render(self, request: RenderRequest, on_step: StepHook = no_hook) -> list[RenderedImage]:
        self.calls += 1
        raise RuntimeError("CUDA out of memory. Tried to allocate 2.00 GiB")


class MemoryStore:
    """Keeps images in dicts; `failures` stages fail first (an S3 outage)."""

    def __init__(self, failures: int = 0) -> None:
        self.images: dict[str, bytes] = {}  # public: key -> PNG
        self.staged: dict[tuple[str, int, int], bytes] = {}
        self.failures = failures
        self.puts = 0
        self._lock = threading.Lock()

    def stage(self, token: str, fence: int, index: int, png: bytes, guard: Guard) -> Staged:
        guard()
        with self._lock:
            self.puts += 1
            if self.failures > 0:
                self.failures -= 1
                raise ConnectionError("storage endpoint unreachable")
            self.staged[(token, fence, index)] = png
        return Staged(token, fence, index, png)

    def publish(self, staged: Staged, guard: Guard) -> None:
        guard()
        with self._lock:
            self.images.setdefault(f"{staged.token}/{staged.index:05d}.png", staged.png)

    def discard(self, token: str, fence: int) -> None:
        with self._lock:
            for key in [key for key in self.staged if key[:2] == (token, fence)]:
                del self.staged[key]

    def clean(self, token: str) -> None:
        with self._lock:
            for key in [key for key in self.staged if key[0] == token]:
                del self.staged[key]
