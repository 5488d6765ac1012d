"""Render times, as workers report them: the samples behind ETAs and throughput, and
each worker's own figures (GPU-busy ratio, images per second) for /metrics.

A direct worker writes its samples to Redis itself, an HTTP worker through the
API's /backend/report; both go through `Queue.record_renders`, the one writer
(record_renders.lua keeps the sums and the recent per-image average).
"""

from __future__ import annotations

import math
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


@dataclass(frozen=True, slots=True)
class WorkerFigures:
    """One worker's own figures over its last report interval, for /metrics.

    busy_ratio: the share of the interval its GPU (its render thread) was rendering;
    images_per_s: images rendered per second of the interval; per_image_s: seconds
    per image, by resolution "<W>x<H>", of the images rendered in it."""

    busy_ratio: float
    images_per_s: float
    per_image_s: dict[str, float]

    def encode(self) -> str:
        """The text record_renders.lua stores: "busy=0.981 ips=1.930 768x576=0.518"."""
        parts = [f"busy={self.busy_ratio:.3f}", f"ips={self.images_per_s:.3f}"]
        parts += [f"{res}={s:.3f}" for res, s in sorted(self.per_image_s.items())]
        return " ".join(parts)

    @classmethod
    def decode(cls, text: str) -> WorkerFigures | None:
        """The figures from their text; None if it is not what encode() writes."""
        fields: dict[str, float] = {}
        for part in text.split():
            name, _, value = part.partition("=")
            try:
                number = float(value)
            except ValueError:
                return None
            if not math.isfinite(number) or number < 0:
                return None
            fields[name] = number
        busy, ips = fields.pop("busy", None), fields.pop("ips", None)
        if busy is None or ips is None or not all(_resolution(res) for res in fields):
            return None
        return cls(busy, ips, fields)


def _resolution(text: str) -> bool:
    width, _, height = text.partition("x")
    return width.isdecimal() and height.isdecimal() and len(text) <= 11
