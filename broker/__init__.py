"""The queue's state in Redis: one source of truth for the API and the workers, and
every fact both sides share. Imports nothing above it.

    queue       Queue: one typed call per Lua script, one round trip each
    lua         the scripts (one per atomic state change), loaded once, codes -> errors
    keys        every Redis key name of a queue, from one prefix (the data model map)
    job         JobSpec, Claim, StatusView, ImportedJob: what the calls take and return
    states      JobState: the states, changed only inside Lua
    details     read-only views for the v2 API (one job in depth)
    figures     the whole queue in one read: depth, images, counters, workers, durations
    renders     render samples, the one writer's input (ETAs, throughput)
    tokens      a token's shape, and new tokens
    images      where a job's images live: <token>/<index:05d>.png; preview limits
    image_gc    deletes the images of finished jobs from a local folder, when due
    errors      the broker's errors
    settings    BrokerSettings: what every process shares (Redis, leases, retention)
    connection  the one place a Redis URL becomes a client
"""

from broker.errors import (
    BrokerError,
    InvalidJob,
    InvalidTransition,
    JobCancelled,
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
    "JobCancelled",
    "JobNotFound",
    "JobSpec",
    "JobState",
    "Queue",
    "StaleClaim",
    "StatusView",
    "StorageUnavailable",
    "TokenExists",
    "connection",
    "details",
    "errors",
    "figures",
    "image_gc",
    "images",
    "job",
    "keys",
    "lua",
    "queue",
    "renders",
    "settings",
    "states",
    "tokens",
]
