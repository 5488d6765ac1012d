"""The queue's operations: one typed call per Lua script, one Redis round trip each.

Each call passes its script exactly the keys the script's header lists, in its
order (broker/keys.py, SCRIPT_KEYS), on one Redis server or a Redis Cluster alike.
"""

from __future__ import annotations

import base64
import binascii
from collections.abc import Awaitable, Callable, Iterable, Sequence
from functools import wraps
from typing import Any, ParamSpec, TypeVar

from redis.asyncio import Redis, RedisCluster
from redis.exceptions import RedisError

from broker import details, figures
from broker.details import JobDetails
from broker.errors import StorageUnavailable
from broker.figures import QueueFigures
from broker.images import PREVIEW_MAX_BYTES
from broker.job import Claim, ImportedJob, JobSpec, StatusView
from broker.keys import SCRIPT_KEYS, QueueKeys, fixed_keys
from broker.lua import Call, Scripts, raise_for_code
from broker.renders import FORGET_WORKER_AFTER_MS, RenderSample, WorkerFigures
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

    def __init__(self, redis: Redis | RedisCluster, settings: BrokerSettings) -> None:
        self.redis = redis
        self.settings = settings
        self.keys = QueueKeys(settings.key_prefix)
        self._scripts = Scripts(redis)
        # built once: the status call is the hot path
        self._fixed = {script: fixed_keys(self.keys, script) for script in SCRIPT_KEYS}
        self._job_prefix = self.keys.job_prefix
        self._with_preview = {name for name, keys in SCRIPT_KEYS.items() if "preview" in keys}

    def _keys(self, script: str, token: str | None = None, client: str = "") -> list[str]:
        """The script's KEYS: the job's own key first when the call is about one job
        (and its preview's last, where the script touches that), the client's zset
        last when it names one."""
        keys = self._fixed[script]
        if token is not None:
            keys = [self._job_prefix + token, *keys]
            if script in self._with_preview:
                keys.append(self.keys.preview(token))
        if client:
            keys = [*keys, self.keys.client(client)]
        return keys

    async def _run(
        self, script: str, args: list[str | int], token: str | None = None, client: str = ""
    ) -> list[Any]:
        return await self._scripts.run(script, self._keys(script, token, client), args)

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
        (created,) = await self._run("add_job", args, token, client)
        return int(created)

    @_storage_errors
    async def hold_client_slot(self, client: str, token: str, max_open: int, hold_ms: int) -> None:
        """Holds one of the client's open-job slots for `token` (before its captcha is
        verified); raises TooManyOpenJobs at the cap. add_job then takes the slot."""
        await self._run("hold_client_slot", [token, max_open, hold_ms], client=client)

    @_storage_errors
    async def release_client_slot(self, client: str, token: str) -> bool:
        """Gives back a slot held for a job that was not added; True if one was held."""
        (released,) = await self._run("release_client_slot", [token], client=client)
        return bool(released)

    @_storage_errors
    async def status(self, token: str) -> StatusView:
        reply = await self._run("get_status", [], token)
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
        fraction: float | None = None,
        preview: bytes | None = None,
    ) -> int:
        """Extends the claim's lease; returns the new lease end (ms). Fenced: a
        superseded claim gets StaleClaim, one whose job was cancelled JobCancelled.

        Also records progress: `progress` images done, `fraction` of the whole job
        (0..1, denoising steps included) and a small JPEG `preview` of the image being
        drawn (at most PREVIEW_MAX_BYTES; it lives as long as the lease)."""
        lease = lease_ms or self.settings.worker_lease_ms
        if preview is not None and len(preview) > PREVIEW_MAX_BYTES:
            raise ValueError(f"a preview is at most {PREVIEW_MAX_BYTES} bytes")
        (until,) = await self._run(
            "renew_lease",
            [
                token,
                fence,
                lease,
                "" if progress is None else progress,
                "" if fraction is None else f"{min(1.0, max(0.0, fraction)):.4f}",
                "" if not preview else base64.b64encode(preview).decode("ascii"),
            ],
            token,
        )
        return int(until)

    @_storage_errors
    async def preview(self, token: str) -> bytes | None:
        """The live preview of a pending job (JPEG), written by its current claim;
        None when there is none. Raises JobNotFound."""
        reply = await self._run("get_preview", [], token)
        if not reply:
            return None
        try:
            return base64.b64decode(reply[0], validate=True)
        except (binascii.Error, ValueError):
            return None

    @_storage_errors
    async def take_due_images(self, limit: int = 100) -> list[str]:
        """Tokens whose images are due for deletion, taken: no other caller gets them."""
        return [str(token) for token in await self._run("take_due_images", [limit])]

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
            token,
        )
        return int(claimed), int(lease_until)

    @_storage_errors
    async def release(self, token: str, fence: int, reason: str, counted: bool = True) -> JobState:
        """Gives a claimed job back; returns its new state (new, or failed at the limit).
        `counted=False`: a job claimed ahead and never started, which costs no attempt."""
        s = self.settings
        (outcome,) = await self._run(
            "release_job",
            [
                token,
                fence,
                s.max_attempts,
                s.retention_ms,
                reason[:200],
                "1" if counted else "0",
            ],
            token,
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
    async def figures(
        self,
        live_ms: int = figures.LIVE_MS,
        sample_every_ms: int = 0,
        window_ms: int = 5 * 60_000,
    ) -> QueueFigures:
        """Every figure of the whole queue, in one step (queue_figures.lua): depth per
        state, oldest jobs, images per state, counters, live workers, render times,
        the claim-to-complete histogram and the completion rate.

        With `sample_every_ms` > 0 the call also records a throughput sample (at
        most one per that time) for the rate over `window_ms`; 0 only reads."""
        args: list[str | int] = [live_ms, sample_every_ms, window_ms]
        return figures.queue_figures(await self._run("queue_figures", args))

    async def counts(self) -> dict[str, int]:
        """Jobs per live state and the lifetime counters: a view of `figures()`."""
        f = await self.figures()
        return {"new": f.new, "pending": f.pending, **f.counters}

    @_storage_errors
    async def cancel(self, token: str) -> JobState:
        """Withdraws a new or pending job (v2 DELETE); returns the state it had.
        A pending job's worker sees `cancel_requested` and stops (cancel_job.lua)."""
        (previous,) = await self._run("cancel_job", [token, self.settings.retention_ms], token)
        return JobState(previous)

    @_storage_errors
    async def job_details(self, token: str, live_ms: int, ahead_limit: int) -> JobDetails:
        """One job with its place, the work ahead, live workers and render times."""
        reply = await self._run("job_details", [live_ms, ahead_limit], token)
        return details.job_details(token, reply)

    @_storage_errors
    async def record_renders(
        self,
        worker: str,
        samples: Iterable[RenderSample],
        leaving: bool = False,
        figures: WorkerFigures | None = None,
    ) -> int:
        """Adds a worker's render samples and marks it live (or gone, when leaving),
        with its own recent figures when given; returns the Redis clock (ms)."""
        args: list[str | int] = [
            worker,
            "gone" if leaving else "live",
            FORGET_WORKER_AFTER_MS,
            "" if figures is None else figures.encode(),
        ]
        for sample in samples:
            args += [sample.resolution, sample.images, sample.ms]
        (now,) = await self._run("record_renders", args)
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
        calls: list[Call] = []
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
            calls.append((self._keys("import_job", job.token), args))
        replies = await self._scripts.run_many("import_job", calls)
        return [str(raise_for_code(reply)[0]) for reply in replies]
