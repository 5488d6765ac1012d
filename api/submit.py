"""Queueing a job: the one flow behind `/addJob` and `POST /v2/jobs`.

Order (api/abuse.py explains why): the fields are checked by the caller first
(no I/O: a malformed request costs nothing and is not counted); a replay of an
Idempotency-Key (v2) is answered with its first job before anything is counted;
then the client's rate is counted and one of its open-job slots is held for the new
token (the per-client caps: open jobs, open images); with SDQ_MAX_WAIT_S, a job
that would wait longer is refused; only then is the captcha verified, so a captcha
is never spent on a request the limits refuse; a refusal gives the slot back. The
job is added with the held slot, under a fresh token if the first is somehow taken,
queued first come first served or fairly (SDQ_SCHEDULING) under the client's key.
"""

from __future__ import annotations

import logging
import math

from api.errors import CaptchaFailed, QueueFull
from api.eta import wait_seconds
from api.idempotency import digest, fingerprint
from api.legacy.query import is_utf8
from api.legacy.rules import JobRequest
from api.services import Services
from broker.admission import find_once, wait_estimate
from broker.errors import StorageUnavailable, TokenExists
from broker.job import Added
from broker.tokens import new_token

log = logging.getLogger(__name__)

TOKEN_TRIES = 3
RETRY_AFTER_MAX_S = 3600


async def submit(
    services: Services, request: JobRequest, client: str | None, idempotency_key: str = ""
) -> Added:
    """Adds a checked request as a new job; returns its token (and whether an
    Idempotency-Key answered a job added before).

    `client` is the request's address (trusted proxies resolved). Raises
    RateLimited, TooManyOpenJobs, TooManyOpenImages, QueueFull, CaptchaFailed,
    IdempotencyConflict or StorageUnavailable."""
    token, key = new_token(), services.clients.key(client)
    once = None
    if idempotency_key:
        once = (digest(key, idempotency_key), fingerprint(request))
        first = await find_once(services.queue, *once)
        if first is not None:
            log.info("idempotent replay", extra={"token": first.token})
            return first
    await services.abuse.admit(key, token, request.number)
    try:
        await _check_wait(services, request, key)
        # Bytes that are no UTF-8 cannot be sent to hCaptcha, and would fail there anyway.
        if not is_utf8(request.captcha) or not await services.captcha.verify(
            request.captcha, client
        ):
            raise CaptchaFailed
    except (QueueFull, CaptchaFailed):
        await services.abuse.release(key, token)
        raise
    added = await _enqueue(services, request, token, key, once)
    log.info("idempotent replay" if added.replayed else "job added", extra={"token": added.token})
    return added


async def _check_wait(services: Services, request: JobRequest, client_key: str) -> None:
    """QueueFull when a new job of this client would wait past SDQ_MAX_WAIT_S for the
    work ahead of it (the v2 ETA's estimate; unknown, e.g. no worker yet: admitted)."""
    settings = services.settings
    if settings.max_wait_s <= 0:
        return
    live_ms = round(settings.worker_live_s * 1000)
    details = await wait_estimate(
        services.queue, client_key, request.number, request.width, request.height, live_ms
    )
    wait = wait_seconds(details)
    if wait is not None and wait > settings.max_wait_s:
        retry = min(RETRY_AFTER_MAX_S, max(1, math.ceil(wait - settings.max_wait_s)))
        raise QueueFull(math.ceil(wait), retry)


async def _enqueue(
    services: Services,
    request: JobRequest,
    token: str,
    client_key: str,
    once: tuple[str, str] | None,
) -> Added:
    abuse = services.abuse
    for _ in range(TOKEN_TRIES):
        try:
            return await services.queue.add(
                token,
                request.prompt,
                request.number,
                request.width,
                request.height,
                client=client_key,
                max_open=abuse.max_open,
                max_images=abuse.max_images,
                once=once,
            )
        except TokenExists:  # 2**-128 per pair; retried rather than assumed away
            token = new_token()
    raise StorageUnavailable("could not allocate a token")
