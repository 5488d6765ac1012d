"""Where jobs come from: a small protocol with two implementations (HTTP, Redis)."""

from __future__ import annotations

from typing import Protocol

from broker.job import Claim
from broker.renders import RenderSample
from broker.states import JobState


class JobSource(Protocol):
    name: str

    async def claim(self) -> Claim | None:
        """The oldest job, now pending under a lease for this worker; None when idle."""
        ...

    async def wait_for_work(self) -> None:
        """Returns when a job may be claimable (or after a fallback poll interval)."""
        ...

    async def renew(self, claim: Claim, progress: int) -> None:
        """Extends the lease and records images done so far. Raises LeaseLost."""
        ...

    async def complete(self, claim: Claim) -> None:
        """Marks the job complete (every image is stored). Raises LeaseLost."""
        ...

    async def release(self, claim: Claim, reason: str) -> JobState | None:
        """Gives the job back (attempt counted); its new state, None if unsupported."""
        ...

    async def report(self, samples: list[RenderSample], leaving: bool) -> None:
        """Records render times and that this worker is alive (or leaving)."""
        ...

    async def aclose(self) -> None: ...
