"""The queue's operations: one typed call per Lua script, one Redis round trip each.

Each call passes its script exactly the keys the script's header lists, in its
order (broker/keys.py, SCRIPT_KEYS), on one Redis server or a Redis Cluster alike:
broker/calls.py builds them, and turns any Redis failure into StorageUnavailable.
"""

from __future__ import annotations

import base64
import binascii
from collections.abc import Iterable, Sequence

from broker import details, figures
from broker.calls import ScriptCalls, storage_errors
from broker.details import JobDetails
from broker.figures import QueueFigures
from broker.images import PREVIEW_MAX_BYTES
from broker.job import Added, Claim, ImportedJob, JobSpec, StatusView, SweepResult
from broker.lua import Call
from broker.renders import FORGET_WORKER_AFTER_MS, RenderSample, WorkerFigures
from broker.states import JobState

IDEMPOTENCY_MS = 24 * 3600 * 1000  # how long an Idempotency-Key answers its first job


class Queue(ScriptCalls):
    """One job queue in Redis. Safe to share between tasks; holds no state of its own."""

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
        """Appends a new job; returns its creation time (ms, Redis clock). See `add`."""
        job = (token, prompt, number, width, height)
        added = await self.add(*job, created_ms=created_ms, client=client, max_open=max_open)
        return added.created_ms

    @storage_errors
    async def add(
        self,
        token: str,
        prompt: str,
        number: int,
        width: int,
        height: int,
        *,
        created_ms: int | None = None,
        client: str = "",
        max_open: int = 0,
        max_images: int = 0,
        once: tuple[str, str] | None = None,
    ) -> Added:
        """Queues a new job, first come first served or fairly (SDQ_SCHEDULING).

        With `client`, the job counts as that client's open job until it is finished;
        `max_open` > 0 refuses a client already holding that many (TooManyOpenJobs),
        `max_images` > 0 one whose open jobs would then hold more images
        (TooManyOpenImages), atomically with the add. `once` = (digest, request) of an
        Idempotency-Key: the key's first job is answered again for IDEMPOTENCY_MS
        instead of adding one (IdempotencyConflict when its request differs)."""
        digest, request = once or ("", "")
        args: list[str | int] = [token, prompt, number, width, height]
        args += ["" if created_ms is None else created_ms, client, max_open, max_images]
        args += [self.settings.scheduling.value, request, IDEMPOTENCY_MS]
        created, first, replayed = await self._run("add_job", args, token, client, digest)
        return Added(str(first), int(created), bool(replayed))

    @storage_errors
    async def hold_client_slot(
        self,
        client: str,
        token: str,
        max_open: int,
        hold_ms: int,
        number: int = 1,
        max_images: int = 0,
    ) -> None:
        """Holds one of the client's open-job slots for `token` (before its captcha is
        verified); raises TooManyOpenJobs, or TooManyOpenImages when a job of `number`
        images would pass `max_images`. add_job then takes the slot."""
        args: list[str | int] = [token, max_open, hold_ms, number, max_images, client]
        await self._run("hold_client_slot", args, client=client)

    @storage_errors
    async def release_client_slot(self, client: str, token: str) -> bool:
        """Gives back a slot held for a job that was not added; True if one was held."""
        (released,) = await self._run("release_client_slot", [token], client=client)
        return bool(released)

    @storage_errors
    async def hold_stream(self, client: str, stream: str, max_streams: int, hold_ms: int) -> None:
        """Holds (or extends) one of the client's event-stream places; raises
        TooManyStreams when the client holds `max_streams` others on any replica."""
        await self._run("hold_stream", [stream, max_streams, hold_ms], client=client)

    @storage_errors
    async def release_stream(self, client: str, stream: str) -> None:
        await self._run("release_stream", [stream], client=client)

    @storage_errors
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

    @storage_errors
    async def next_job(self) -> JobSpec | None:
        """The oldest claimable new job, reserved for a while; its state stays new."""
        s = self.settings
        reply = await self._run(
            "next_job", [s.reservation_ms, s.max_attempts, s.retention_ms, s.sweep_limit]
        )
        return None if not reply else JobSpec(*reply)

    @storage_errors
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

    @storage_errors
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

    @storage_errors
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

    @storage_errors
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

    @storage_errors
    async def take_due_images(self, limit: int = 100) -> list[str]:
        """Tokens whose images are due for deletion, taken: no other caller gets them."""
        (tokens,) = await self._run("take_due_images", [limit])
        return [str(token) for token in tokens]

    @storage_errors
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

    @storage_errors
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

    @storage_errors
    async def requeue_expired(self) -> SweepResult:
        """Runs the sweep once (at most SDQ_SWEEP_LIMIT leases and reservations)."""
        s = self.settings
        requeued, failed, unreserved, dropped, full, counted = await self._run(
            "requeue_expired", [s.max_attempts, s.retention_ms, s.sweep_limit]
        )
        return SweepResult(
            int(requeued), int(failed), int(unreserved), int(dropped), bool(full), not counted
        )

    @storage_errors
    async def wait_for_work(self, timeout_s: float) -> bool:
        """Blocks until a job may be claimable or the timeout passes (no hot polling)."""
        return await self.redis.blpop([self.keys.wakeup], timeout=timeout_s) is not None

    @storage_errors
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

    @storage_errors
    async def cancel(self, token: str) -> JobState:
        """Withdraws a new or pending job (v2 DELETE); returns the state it had.
        A pending job's worker sees `cancel_requested` and stops (cancel_job.lua)."""
        args: list[str | int] = [token, self.settings.retention_ms, ""]  # "": not audited
        (previous,) = await self._run("cancel_job", args, token)
        return JobState(previous)

    @storage_errors
    async def job_details(self, token: str, live_ms: int) -> JobDetails:
        """One job with its place, the work ahead, live workers and render times: O(1)
        reads whatever the queue's depth (job_details.lua, broker/details.py)."""
        reply = await self._run("job_details", [live_ms], token)
        return details.job_details(token, reply)

    @storage_errors
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

    @storage_errors
    async def ping(self) -> bool:
        return bool(await self.redis.ping())

    @storage_errors
    async def try_lock(self, key: str, owner: str, ttl_ms: int) -> bool:
        """A short-lived lock (SET NX PX), for work one process per interval should do."""
        return bool(await self.redis.set(key, owner, nx=True, px=ttl_ms))

    @storage_errors
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
        return [str(self._scripts.values("import_job", reply)[0]) for reply in replies]
