"""The queue's state in Redis: one source of truth for the API and the workers."""

from broker.errors import (
    BrokerError,
    InvalidJob,
    InvalidTransition,
    JobNotFound,
    StaleClaim,
    StorageUnavailable,
    TokenExists,
)
from broker.job import Claim, ImportedJob, JobSpec, StatusView
from broker.queue import Queue
from broker.states import JobState

__all__ = [
    "BrokerError",
    "Claim",
    "ImportedJob",
    "InvalidJob",
    "InvalidTransition",
    "JobNotFound",
    "JobSpec",
    "JobState",
    "Queue",
    "StaleClaim",
    "StatusView",
    "StorageUnavailable",
    "TokenExists",
]
