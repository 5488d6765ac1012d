"""A worker's render times, buffered and summed per resolution until the next report,
and its own figures over each report interval (GPU-busy ratio, images per second,
seconds per image by resolution) for /metrics.

Workers send their samples every few seconds (SDQ_REPORT_INTERVAL_S), so
reporting costs nothing per job; the source writes them (Queue.record_renders,
directly or through the API's /backend/report).
"""

from __future__ import annotations

import threading
import time

from broker.renders import RenderSample, WorkerFigures


class RenderTimes:
    """A worker's unsent samples, summed per resolution, and the time its render
    thread was busy (added from that thread: a lock keeps the sums whole)."""

    def __init__(self) -> None:
        self._sums: dict[tuple[int, int], list[int]] = {}
        self._interval: dict[tuple[int, int], list[int]] = {}
        self._busy_s = 0.0
        self._since = time.monotonic()
        self._lock = threading.Lock()

    def add(self, width: int, height: int, images: int, ms: int) -> None:
        with self._lock:
            for sums in (self._sums, self._interval):
                entry = sums.setdefault((width, height), [0, 0])
                entry[0] += images
                entry[1] += ms

    def busy(self, seconds: float) -> None:
        with self._lock:
            self._busy_s += seconds

    def drain(self) -> list[RenderSample]:
        with self._lock:
            samples = [RenderSample(w, h, n, ms) for (w, h), (n, ms) in self._sums.items()]
            self._sums.clear()
        return samples

    def keep(self, samples: list[RenderSample]) -> None:
        """Samples that could not be sent, kept for the next report."""
        with self._lock:
            for s in samples:
                entry = self._sums.setdefault((s.width, s.height), [0, 0])
                entry[0] += s.images
                entry[1] += s.ms

    def figures(self) -> WorkerFigures:
        """The figures since the last call, which starts a new interval."""
        now = time.monotonic()
        with self._lock:
            wall = max(now - self._since, 1e-6)
            images = sum(n for n, _ in self._interval.values())
            per_image = {
                f"{w}x{h}": ms / 1000 / n for (w, h), (n, ms) in self._interval.items() if n
            }
            busy = min(1.0, self._busy_s / wall)
            self._interval.clear()
            self._busy_s, self._since = 0.0, now
        return WorkerFigures(busy, images / wall, per_image)
