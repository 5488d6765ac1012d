"""The queue's state in Redis: one source of truth for the API and the workers, and
every fact both sides share. Imports nothing above it.

    queue       Queue: one typed call per Lua script, one round trip each
    calls       ScriptCalls: each script call's KEYS, built once; Redis errors -> ours
    admin       QueueAdmin: the operator's calls (pause, retry, cancel a client, status)
    admission   what the API asks before it queues: an Idempotency-Key, the wait
    fair        fair scheduling: the algorithm the scripts keep, Scheduling, cost
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
    server      the Redis server: its epoch (did it lose its data?) and risky settings
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
    "admin",
    "admission",
    "calls",
    "connection",
    "details",
    "errors",
    "fair",
    "figures",
    "image_gc",
    "images",
    "job",
    "keys",
    "lua",
    "queue",
    "renders",
    "server",
    "settings",
    "states",
    "tokens",
]
