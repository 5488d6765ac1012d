"""The queue's state in Redis: one source of truth for the API and the workers."""

from broker.errors import (
    BrokerError,
    InvalidTransition,
    JobNotFound,
    StaleAttempt,
    StorageUnavailable,
    TokenExists,
)
from broker.job import Claim, JobRecord, JobStatus, NextJob
from broker.queue import Queue
from broker.states import JobState

__all__ = [
    "BrokerError",
    "Claim",
    "InvalidTransition",
    "JobNotFound",
    "JobRecord",
    "JobState",
    "JobStatus",
    "NextJob",
    "Queue",
    "StaleAttempt",
    "StorageUnavailable",
    "TokenExists",
]
