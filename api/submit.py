"""Queueing a job: the one flow behind `/addJob` and `POST /v2/jobs`.

Order (api/abuse.py explains why): the fields are checked by the caller first
(no I/O: a malformed request costs nothing and is not counted); then the
client's rate is counted and one of its open-job slots is held for the new
token; only then is the captcha verified, so a captcha is never spent on a
request the limits refuse; a failed captcha gives the slot back. The job is
added with the held slot, under a fresh token if the first is somehow taken.
"""

from __future__ import annotations

import logging

from api.errors import CaptchaFailed
from api.legacy.query import is_utf8
from api.legacy.rules import JobRequest
from api.services import Services
from broker.errors import StorageUnavailable, TokenExists
from broker.tokens import new_token

log = logging.getLogger(__name__)

TOKEN_TRIES = 3


async def submit(services: Services, request: JobRequest, client: str | None) -> str:
    """Adds a checked request as a new job and returns its token.

    `client` is the request's address (trusted proxies resolved). Raises
    RateLimited, TooManyOpenJobs, CaptchaFailed or StorageUnavailable."""
    token, key = new_token(), services.clients.key(client)
    await services.abuse.admit(key, token)
    # Bytes that are no UTF-8 cannot be sent to hCaptcha, and would fail there anyway.
    if not is_utf8(request.captcha) or not await services.captcha.verify(request.captcha, client):
        await services.abuse.release(key, token)
        raise CaptchaFailed
    token = await _enqueue(services, request, token, key)
    log.info("job added", extra={"token": token})
    return token


async def _enqueue(services: Services, request: JobRequest, token: str, client_key: str) -> str:
    max_open = services.abuse.max_open
    for _ in range(TOKEN_TRIES):
        try:
            await services.queue.add_job(
                token,
                request.prompt,
                request.number,
                request.width,
                request.height,
                client=client_key if max_open else "",
                max_open=max_open,
            )
        except TokenExists:  # 2**-128 per pair; retried rather than assumed away
            token = new_token()
            continue
        return token
    raise StorageUnavailable("could not allocate a token")
