"""Job states. They change only inside the Lua scripts of broker/lua/."""

from enum import StrEnum


class JobState(StrEnum):
    NEW = "new"  # waiting in the queue (possibly reserved by a /getNextJob caller)
    PENDING = "pending"  # claimed by a worker that holds a lease on it
    COMPLETE = "complete"  # every image is stored; expires after the retention time
    FAILED = "failed"  # ran out of attempts (extension); expires like complete
    CANCELLED = "cancelled"  # withdrawn by its owner through the v2 API (extension)

    @property
    def is_terminal(self) -> bool:
        return self in _TERMINAL


_TERMINAL = frozenset({JobState.COMPLETE, JobState.FAILED, JobState.CANCELLED})
