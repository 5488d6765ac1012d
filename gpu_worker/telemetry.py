"""A worker's render times, buffered and summed per resolution until the next report.

Workers send their samples every few seconds (SDQ_REPORT_INTERVAL_S), so
reporting costs nothing per job; the source writes them (Queue.record_renders,
directly or through the API's /backend/report).
"""

from __future__ import annotations

from broker.renders import RenderSample


class RenderTimes:
    """A worker's unsent samples, summed per resolution."""

    def __init__(self) -> None:
        self._sums: dict[tuple[int, int], list[int]] = {}

    def add(self, width: int, height: int, images: int, ms: int) -> None:
        entry = self._sums.setdefault((width, height), [0, 0])
        entry[0] += images
        entry[1] += ms

    def drain(self) -> list[RenderSample]:
        samples = [RenderSample(w, h, n, ms) for (w, h), (n, ms) in self._sums.items()]
        self._sums.clear()
        return samples
