"""Where jobs come from: a small protocol with two implementations (HTTP, Redis)."""

from __future__ import annotations

from typing import Protocol

from broker.job import Claim
from broker.renders import RenderSample, WorkerFigures
from broker.states import JobState


class JobSource(Protocol):
    name: str

    @property
    def renews(self) -> bool:
        """False where the server offers no lease renewal and no release (a legacy
        server): then the worker claims no job ahead of the one it renders."""
        ...

    async def claim(self) -> Claim | None:
        """The oldest job, now pending under a lease for this worker; None when idle."""
        ...

    async def wait_for_work(self) -> None:
        """Returns when a job may be claimable (or after a fallback poll interval)."""
        ...

    async def renew(
        self,
        claim: Claim,
        progress: int,
        fraction: float | None = None,
        preview: bytes | None = None,
    ) -> None:
        """Extends the lease and records images done so far, the fraction of the whole
        job (steps included) and a small JPEG preview. Raises LeaseLost, JobCancelled."""
        ...

    async def complete(self, claim: Claim) -> None:
        """Marks the job complete (every image is stored). Raises LeaseLost."""
        ...

    async def release(self, claim: Claim, reason: str, counted: bool = True) -> JobState | None:
        """Gives the job back (attempt counted, unless `counted` is False: a job claimed
        ahead and never started); its new state, None if unsupported."""
        ...

    async def report(
        self,
        samples: list[RenderSample],
        leaving: bool,
        figures: WorkerFigures | None = None,
    ) -> None:
        """Records render times, this worker's own figures, and that it is alive (or
        leaving)."""
        ...

    async def take_due_images(self, limit: int) -> list[str]:
        """Tokens whose local images are due for deletion, taken for this worker to
        delete ([] where the source cannot hand them out: the API's sweeper does)."""
        ...

    async def aclose(self) -> None: ...
