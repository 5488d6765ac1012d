"""Render times, as workers report them: the samples behind ETAs and throughput.

A direct worker writes its samples to Redis itself, an HTTP worker through the
API's /backend/report; both go through `Queue.record_renders`, the one writer
(record_renders.lua keeps the sums and the recent per-image average).
"""

from __future__ import annotations

from dataclasses import dataclass

FORGET_WORKER_AFTER_MS = 24 * 3600 * 1000  # a worker unseen this long leaves {p}:workers


@dataclass(frozen=True, slots=True)
class RenderSample:
    """Render time of some images of one resolution."""

    width: int
    height: int
    images: int
    ms: int

    @property
    def resolution(self) -> str:
        return f"{self.width}x{self.height}"
