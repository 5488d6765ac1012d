"""Plain, immutable views of a job, as the broker's calls take and return them."""

from __future__ import annotations

from dataclasses import dataclass

from broker.states import JobState


@dataclass(frozen=True, slots=True)
class JobSpec:
    """What a backend needs to render a job (the /getNextJob object)."""

    token: str
    number: int
    width: int
    height: int
    prompt: str


@dataclass(frozen=True, slots=True)
class Claim:
    """A job held under a lease.

    `fence` is this claim's fencing token: every later call of the claim (renew,
    release, complete) presents it, and the broker refuses it once another claim
    took the job. It is not the failure count (`attempts`). None only where a
    legacy server gave no fence (then the claim cannot be renewed or released)."""

    job: JobSpec
    fence: int | None
    lease_until_ms: int | None


@dataclass(frozen=True, slots=True)
class StatusView:
    """What /getJobStatus (and the v2 API) shows of a job."""

    token: str
    state: JobState
    created_ms: int
    now_ms: int
    queue_length: int
    attempts: int
    progress: int
    number: int
    width: int
    height: int

    @property
    def age_ms(self) -> int:
        return self.now_ms - self.created_ms


@dataclass(frozen=True, slots=True)
class ImportedJob:
    """A job of the original service, as `sdq import-sqlite` hands it to the broker."""

    token: str
    prompt: str
    number: int
    width: int
    height: int
    state: JobState
    created_ms: int
    completed_ms: int | None


@dataclass(frozen=True, slots=True)
class Added:
    """What an add answered: the job's token and creation time; `replayed` when an
    Idempotency-Key named a job added before (that job's token and time)."""

    token: str
    created_ms: int
    replayed: bool


@dataclass(frozen=True, slots=True)
class SweepResult:
    """One sweep call: expired leases requeued or failed, reservations ended, index
    entries dropped because their job hash was gone. `full`: a batch reached
    SDQ_SWEEP_LIMIT, so more may be due (call again at once); `recount`: the image
    sums are to be counted again (the next figures read does it)."""

    requeued: int
    failed: int
    unreserved: int
    dropped: int
    full: bool
    recount: bool

    @property
    def counts(self) -> tuple[int, int, int]:
        """(requeued, failed, unreserved)."""
        return self.requeued, self.failed, self.unreserved
