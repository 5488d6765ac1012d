"""Where jobs come from: a small protocol with two implementations (HTTP, Redis)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol

from broker.job import NextJob
from broker.states import JobState


@dataclass(frozen=True, slots=True)
class Lease:
    """A job this worker holds. `attempt` is the fencing token of the claim; None when
    a legacy server gave none (then the job cannot be renewed, fenced or released)."""

    job: NextJob
    attempt: int | None
    lease_until_ms: int | None


@dataclass(frozen=True, slots=True)
class RenderSample:
    """Render time of some images of one resolution, for ETAs."""

    width: int
    height: int
    images: int
    ms: int


class JobSource(Protocol):
    name: str

    async def claim(self) -> Lease | None:
        """The oldest job, now pending under a lease for this worker; None when idle."""
        ...

    async def wait_for_work(self) -> None:
        """Returns when a job may be claimable (or after a fallback poll interval)."""
        ...

    async def renew(self, lease: Lease, progress: int) -> None:
        """Extends the lease and records images done so far. Raises LeaseLost."""
        ...

    async def complete(self, lease: Lease) -> None:
        """Marks the job complete (every image is stored). Raises LeaseLost."""
        ...

    async def release(self, lease: Lease, reason: str) -> JobState | None:
        """Gives the job back (attempt counted); its new state, None if unsupported."""
        ...

    async def report(self, samples: list[RenderSample], leaving: bool) -> None:
        """Records render times and that this worker is alive (or leaving)."""
        ...

    async def aclose(self) -> None: ...
