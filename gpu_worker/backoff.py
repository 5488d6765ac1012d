"""Capped exponential backoff with jitter: no crash loop, no busy loop, no herd."""

from __future__ import annotations

import random
from collections.abc import Callable
from dataclasses import dataclass, field


@dataclass
class Backoff:
    """Delays base, 2·base, 4·base … up to cap, each drawn from [d/2, d] ("equal
    jitter"): never near zero, so an outage never becomes a busy loop, and spread
    out, so a fleet of workers does not hammer a recovering Redis in step."""

    base_s: float
    cap_s: float
    rng: Callable[[], float] = field(default=random.random)
    failures: int = 0

    def next_delay(self) -> float:
        ceiling = min(self.cap_s, self.base_s * 2.0 ** min(self.failures, 32))
        self.failures += 1
        return ceiling / 2 + self.rng() * ceiling / 2

    def reset(self) -> None:
        self.failures = 0
