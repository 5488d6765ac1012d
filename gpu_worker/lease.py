"""A claim's lease as this worker knows it: until when it holds, and whether it is lost.

`check()` runs before every write of the job's images and before every batch
and denoising step: it raises once the heartbeat learnt that the claim is lost
(superseded, or the job cancelled) and once the lease has run out by this
worker's own clock, even if no one told it so. The deadline is counted from
when a renewal was *sent* (the broker started the lease no earlier), less a
margin, on the monotonic clock: a process frozen (SIGSTOP, a stalled VM) past
its lease finds it out at its first check after it thaws, before it writes.
"""

from __future__ import annotations

import math
import time

from broker.job import Claim
from gpu_worker.errors import LeaseLost


def margin_s(lease_s: float) -> float:
    """What a check keeps in hand before the deadline: a tenth of the lease, at most 2 s."""
    return min(2.0, lease_s / 10)


class Lease:
    def __init__(self, claim: Claim, lease_s: float, sent_at: float | None = None) -> None:
        self.claim = claim
        self.lease_s = lease_s
        self.margin_s = margin_s(lease_s)
        started = time.monotonic() if sent_at is None else sent_at
        # A claim without a fence comes from a legacy server: it has no leases at all.
        self.deadline = started + lease_s if claim.fence is not None else math.inf
        self.lost: LeaseLost | None = None

    @property
    def token(self) -> str:
        return self.claim.job.token

    @property
    def fence(self) -> int:
        """The claim's fence, 0 for a legacy claim (which has none)."""
        return self.claim.fence or 0

    def renewed(self, sent_at: float) -> None:
        """A renewal sent at `sent_at` (monotonic) was accepted."""
        if self.claim.fence is not None:
            self.deadline = max(self.deadline, sent_at + self.lease_s)

    def lose(self, why: LeaseLost) -> None:
        """From now on every check fails (the first reason is kept)."""
        if self.lost is None:
            self.lost = why

    def left_s(self) -> float:
        return self.deadline - self.margin_s - time.monotonic()

    def check(self) -> None:
        """Raises LeaseLost (or JobCancelled) unless the claim still holds the job."""
        if self.lost is not None:
            raise self.lost
        if self.left_s() <= 0:
            ran_out = LeaseLost("the lease ran out by this worker's clock")
            self.lose(ran_out)
            raise ran_out
