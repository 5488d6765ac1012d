"""The queue's operations: one typed call per Lua script, one Redis round trip each."""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Iterable, Sequence
from functools import wraps
from typing import Any, ParamSpec, TypeVar

from redis.asyncio import Redis
from redis.exceptions import RedisError

from broker import details
from broker.details import JobDetails, QueueStats
from broker.errors import StorageUnavailable
from broker.job import Claim, ImportedJob, JobSpec, StatusView
from broker.keys import QueueKeys
from broker.lua import Scripts, raise_for_code, script_source
from broker.renders import FORGET_WORKER_AFTER_MS, RenderSample
from broker.settings import BrokerSettings
from broker.states import JobState

P = ParamSpec("P")
T = TypeVar("T")


def _storage_errors(call: Callable[P, Awaitable[T]]) -> Callable[P, Awaitable[T]]:
    """Any Redis failure surfaces as StorageUnavailable, never as a raw client error."""

    @wraps(call)
    async def wrapper(*args: P.args, **kwargs: P.kwargs) -> T:
        try:
            return await call(*args, **kwargs)
        except (RedisError, OSError) as exc:
            raise StorageUnavailable(type(exc).__name__) from exc

    return wrapper


class Queue:
    """One job queue in Redis. Safe to share between tasks; holds no state of its own."""

    def __init__(self, redis: Redis, settings: BrokerSettings) -> None:
        self.redis = redis
        self.settings = settings
        self.keys = QueueKeys(settings.key_prefix)
        self._scripts = Scripts(redis)
        k = self.keys
        self._queue_keys = [
            k.job_prefix,
            k.waiting,
            k.active,
            k.reserved,
            k.leases,
            k.stats,
            k.wakeup,
            k.seq,
            k.client_prefix,
            k.durations,
        ]
        self._job_prefix, self._active = k.job_prefix, k.active  # built once: status is hot

    async def _run(
        self, script: str, args: list[str | int], extra_keys: tuple[str, ...] = ()
    ) -> list[Any]:
        return await self._scripts.run(script, [*self._queue_keys, *extra_keys], args)

    @_storage_errors
    async def add_job(
        self,
        token: str,
        prompt: str,
        number: int,
        width: int,
        height: int,
        created_ms: int | None = None,
        client: str = "",
        max_open: int = 0,
    ) -> int:
        """Appends a new job; returns its creation time (ms, Redis clock).

        With `client`, the job counts as that client's open job until it is finished,
        and with `max_open` > 0 a client already holding that many is refused
        (TooManyOpenJobs), atomically with the add."""
        args: list[str | int] = [
            token,
            prompt,
            number,
            width,
            height,
            "" if created_ms is None else created_ms,
            client,
            max_open,
        ]
        (created,) = await self._run("add_job", args)
        return int(created)

    @_storage_errors
    async def hold_client_slot(self, client: str, token: str, max_open: int, hold_ms: int) -> None:
        """Holds one of the client's open-job slots for `token` (before its captcha is
        verified); raises TooManyOpenJobs at the cap. add_job then takes the slot."""
        await self._scripts.run(
            "hold_client_slot", [self.keys.client(client)], [token, max_open, hold_ms]
        )

    @_storage_errors
    async def release_client_slot(self, client: str, token: str) -> bool:
        """Gives back a slot held for a job that was not added; True if one was held."""
        (released,) = await self._scripts.run(
            "release_client_slot", [self.keys.client(client)], [token]
        )
        return bool(released)

    @_storage_errors
    async def status(self, token: str) -> StatusView:
        reply = await self._scripts.run("get_status", [self._job_prefix + token, self._active], [])
        state, created, now, qlen, attempts, progress, number, width, height = reply
        return StatusView(
            token=token,
            state=JobState(state),
            created_ms=created,
            now_ms=now,
            queue_length=qlen,
            attempts=attempts,
            progress=progress,
            number=number,
            width=width,
            height=height,
        )

    @_storage_errors
    async def next_job(self) -> JobSpec | None:
        """The oldest claimable new job, reserved for a while; its state stays new."""
        s = self.settings
        reply = await self._run(
            "next_job", [s.reservation_ms, s.max_attempts, s.retention_ms, s.sweep_limit]
        )
        return None if not reply else JobSpec(*reply)

    @_storage_errors
    async def set_state(
        self,
        token: str,
        target: JobState,
        fence: int | None = None,
        worker: str = "http",
    ) -> tuple[int, int]:
        """The legacy transitions (new -> pending, pending -> complete) in one atomic step.

        Returns (fence, lease_until_ms). A pending transition starts a lease sized to
        the work, since a legacy backend never renews it; `fence` given with complete
        refuses a stale claim."""
        return await self._set_state(token, target, fence, worker)

    @_storage_errors
    async def claim(self, worker: str, lease_ms: int | None = None) -> Claim | None:
        """Oldest claimable job -> pending under a lease, for a direct worker."""
        s = self.settings
        reply = await self._run(
            "claim_job",
            [
                lease_ms or s.worker_lease_ms,
                s.max_attempts,
                s.retention_ms,
                s.sweep_limit,
                worker,
            ],
        )
        if not reply:
            return None
        token, number, width, height, prompt, fence, lease_until, _created = reply
        return Claim(JobSpec(token, number, width, height, prompt), fence, lease_until)

    @_storage_errors
    async def renew_lease(
        self,
        token: str,
        fence: int,
        lease_ms: int | None = None,
        progress: int | None = None,
    ) -> int:
        """Extends the claim's lease; returns the new lease end (ms). Fenced."""
        lease = lease_ms or self.settings.worker_lease_ms
        (until,) = await self._run(
            "renew_lease",
            [
                token,
                fence,
                lease,
                "" if progress is None else progress,
            ],
        )
        return int(until)

    @_storage_errors
    async def complete(self, token: str, fence: int) -> None:
        """Marks a claimed job complete; only the current claim may (fencing)."""
        await self._set_state(token, JobState.COMPLETE, fence, "")

    async def _set_state(
        self,
        token: str,
        target: JobState,
        fence: int | None,
        worker: str,
    ) -> tuple[int, int]:
        s = self.settings
        fence_arg = "" if fence is None else str(fence)
        claimed, lease_until = await self._run(
            "set_state",
            [
                token,
                target.value,
                s.lease_base_ms,
                s.lease_per_megapixel_ms,
                fence_arg,
                s.retention_ms,
                worker,
            ],
        )
        return int(claimed), int(lease_until)

    @_storage_errors
    async def release(self, token: str, fence: int, reason: str) -> JobState:
        """Gives a claimed job back; returns its new state (new, or failed at the limit)."""
        s = self.settings
        (outcome,) = await self._run(
            "release_job",
            [
                token,
                fence,
                s.max_attempts,
                s.retention_ms,
                reason[:200],
            ],
        )
        return JobState(outcome)

    @_storage_errors
    async def requeue_expired(self) -> tuple[int, int, int]:
        """Runs the sweep once: (requeued, failed, unreserved)."""
        s = self.settings
        requeued, failed, unreserved = await self._run(
            "requeue_expired", [s.max_attempts, s.retention_ms, s.sweep_limit]
        )
        return int(requeued), int(failed), int(unreserved)

    @_storage_errors
    async def wait_for_work(self, timeout_s: float) -> bool:
        """Blocks until a job may be claimable or the timeout passes (no hot polling)."""
        return await self.redis.blpop([self.keys.wakeup], timeout=timeout_s) is not None

    @_storage_errors
    async def counts(self) -> dict[str, int]:
        """Jobs per live state and the lifetime counters, in one round trip."""
        k = self.keys
        async with self.redis.pipeline(transaction=False) as pipe:
            for index in (k.waiting, k.reserved, k.leases):
                pipe.zcard(index)
            pipe.hgetall(k.stats)
            waiting, reserved, pending, stats = await pipe.execute()
        counters = {name: int(value) for name, value in stats.items()}
        return {"new": waiting + reserved, "pending": pending, **counters}

    @_storage_errors
    async def cancel(self, token: str) -> JobState:
        """Withdraws a new or pending job (v2 DELETE); returns the state it had.
        A pending job's worker sees `cancel_requested` and stops (cancel_job.lua)."""
        (previous,) = await self._run("cancel_job", [token, self.settings.retention_ms])
        return JobState(previous)

    @_storage_errors
    async def job_details(self, token: str, live_ms: int, ahead_limit: int) -> JobDetails:
        """One job with its place, the work ahead, live workers and render times."""
        k = self.keys
        keys = [k.job(token), k.active, k.leases, k.workers, k.render_ms, k.job_prefix]
        reply = await self._scripts.run("job_details", keys, [live_ms, ahead_limit])
        return details.job_details(token, reply)

    @_storage_errors
    async def queue_stats(self, live_ms: int, sample_every_ms: int, window_ms: int) -> QueueStats:
        """Depth per state, counters, live workers, render times, completion rate."""
        k = self.keys
        keys = [k.waiting, k.reserved, k.leases, k.stats, k.workers, k.render_ms, k.throughput]
        args: list[str | int] = [live_ms, sample_every_ms, window_ms]
        return details.queue_stats(await self._scripts.run("queue_stats", keys, args))

    @_storage_errors
    async def record_renders(
        self, worker: str, samples: Iterable[RenderSample], leaving: bool = False
    ) -> int:
        """Adds a worker's render samples and marks it live (or gone, when leaving);
        returns the Redis clock (ms)."""
        args: list[str | int] = [worker, "gone" if leaving else "live", FORGET_WORKER_AFTER_MS]
        for sample in samples:
            args += [sample.resolution, sample.images, sample.ms]
        k = self.keys
        (now,) = await self._scripts.run("record_renders", [k.render_ms, k.workers], args)
        return int(now)

    @_storage_errors
    async def ping(self) -> bool:
        return bool(await self.redis.ping())

    @_storage_errors
    async def try_lock(self, key: str, owner: str, ttl_ms: int) -> bool:
        """A short-lived lock (SET NX PX), for work one process per interval should do."""
        return bool(await self.redis.set(key, owner, nx=True, px=ttl_ms))

    @_storage_errors
    async def import_jobs(self, jobs: Sequence[ImportedJob]) -> list[str]:
        """Loads jobs of the original service in one round trip (a pipeline of
        import_job calls); returns each job's outcome: imported, present or expired."""
        s = self.settings
        script = self.redis.register_script(script_source("import_job"))
        keys = self._queue_keys
        async with self.redis.pipeline(transaction=False) as pipe:
            for job in jobs:
                args: list[str | int] = [
                    job.token,
                    job.prompt,
                    job.number,
                    job.width,
                    job.height,
                    job.state.value,
                    job.created_ms,
                    "" if job.completed_ms is None else job.completed_ms,
                    s.lease_base_ms,
                    s.lease_per_megapixel_ms,
                    s.retention_ms,
                ]
                await script(keys=keys, args=args, client=pipe)
            replies = await pipe.execute()
        return [str(raise_for_code(reply)[0]) for reply in replies]
