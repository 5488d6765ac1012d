"""Plain, immutable views of a job, as the broker's calls return them."""

from __future__ import annotations

from dataclasses import dataclass

from broker.states import JobState


@dataclass(frozen=True, slots=True)
class NextJob:
    """What a backend needs to render a job (the /getNextJob object)."""

    token: str
    number: int
    width: int
    height: int
    prompt: str


@dataclass(frozen=True, slots=True)
class Claim:
    """A job held under a lease. `attempt` is the fencing token of this claim."""

    job: NextJob
    attempt: int
    lease_until_ms: int


@dataclass(frozen=True, slots=True)
class JobStatus:
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
class JobRecord:
    """A whole job hash, for imports, tools and tests."""

    token: str
    prompt: str
    number: int
    width: int
    height: int
    state: JobState
    created_ms: int
    attempts: int
    claims: int
