"""The four legacy endpoints. Each parses, makes one broker call and renders.

Handlers return (status, body); the router (api/legacy_router.py) owns the
HTTP framing and headers. Every domain error maps to the contract's status
and message here, in `_broker_errors`, and nowhere else.
"""

from __future__ import annotations

import logging
import secrets as token_source
from collections.abc import Awaitable, Callable, Mapping
from functools import wraps
from typing import NamedTuple

from api.abuse import RateLimited
from api.legacy.format import error_body, next_job_body, status_body, string_body
from api.legacy.rules import JobRequest, check_job_request, check_token, is_token_shaped
from api.services import Services
from broker.errors import (
    InvalidTransition,
    JobNotFound,
    StaleAttempt,
    StorageUnavailable,
    TokenExists,
    TooManyOpenJobs,
)
from broker.states import JobState

log = logging.getLogger(__name__)

Params = Mapping[str, str]


class Reply(NamedTuple):
    status: int
    body: bytes
    headers: tuple[tuple[bytes, bytes], ...] = ()


STORAGE_FAILED = Reply(500, string_body("storage unavailable"))
TOKEN_NOT_FOUND = Reply(404, string_body("token not found"))
TOO_MANY_REQUESTS = string_body("too many requests")
_SETTABLE = {"pending": JobState.PENDING, "complete": JobState.COMPLETE}


def _broker_errors(
    handler: Callable[..., Awaitable[Reply]],
) -> Callable[..., Awaitable[Reply]]:
    @wraps(handler)
    async def wrapper(*args: object) -> Reply:
        try:
            return await handler(*args)
        except StorageUnavailable as exc:
            log.error("storage unavailable: %s", exc)
            return STORAGE_FAILED
        except JobNotFound:
            return TOKEN_NOT_FOUND
        except InvalidTransition:
            return Reply(400, string_body("invalid state transition"))
        except StaleAttempt:
            return Reply(409, string_body("stale attempt"))
        except RateLimited as exc:
            return Reply(429, TOO_MANY_REQUESTS, ((b"retry-after", b"%d" % exc.retry_after_s),))
        except TooManyOpenJobs:
            return Reply(429, string_body("too many open jobs"))

    return wrapper


@_broker_errors
async def add_job(services: Services, params: Params, secret: str, client: str | None) -> Reply:
    request = check_job_request(
        params.get("prompt", ""),
        params.get("number", ""),
        params.get("resolution", ""),
        params.get("captcha", ""),
    )
    if not isinstance(request, JobRequest):
        return Reply(400, error_body([error.message for error in request]))
    # The limits come before the captcha, so none is spent on a refused request
    # (api/abuse.py); the client key is the address or, for IPv6, its /64.
    token, key = token_source.token_hex(16), services.clients.key(client)
    await services.abuse.admit(key, token)
    if not await services.captcha.verify(request.captcha, client):
        await services.abuse.release(key, token)
        return Reply(400, string_body("captcha failed"))
    token = await _enqueue(services, request, token, key)
    log.info("job added", extra={"token": token})
    return Reply(200, string_body(token))


async def _enqueue(services: Services, request: JobRequest, token: str, client_key: str) -> str:
    for _ in range(3):
        try:
            await services.queue.add_job(
                token,
                request.prompt,
                request.number,
                request.width,
                request.height,
                client=client_key if services.abuse.max_open else "",
                max_open=services.abuse.max_open,
            )
        except TokenExists:  # 2**-128 per pair; retried rather than assumed away
            token = token_source.token_hex(16)
            continue
        return token
    raise StorageUnavailable("could not allocate a token")


@_broker_errors
async def get_job_status(
    services: Services,
    params: Params,
    secret: str,
    client: str | None,
) -> Reply:
    token = params.get("token", "")
    errors = check_token(token)
    if errors:
        return Reply(400, error_body([error.message for error in errors]))
    if not is_token_shaped(token):
        return TOKEN_NOT_FOUND
    return Reply(200, status_body(await services.queue.status(token)))


@_broker_errors
async def get_next_job(
    services: Services,
    params: Params,
    secret: str,
    client: str | None,
) -> Reply:
    if secret == "":
        return Reply(400, string_body("missing secret"))
    if not services.secrets.accepts(secret):
        return Reply(400, string_body("wrong secret"))
    job = await services.queue.next_job()
    if job is None:
        return Reply(404, string_body("no more jobs"))
    return Reply(200, next_job_body(job))


@_broker_errors
async def set_job_status(
    services: Services,
    params: Params,
    secret: str,
    client: str | None,
) -> Reply:
    token, state = params.get("token", ""), params.get("state", "")
    messages = [error.message for error in check_token(token)]
    if secret == "":
        messages.append("missing secret")
    if state == "":
        messages.append("missing state")
    elif state not in _SETTABLE:
        messages.append("invalid value for state")
    if messages:
        return Reply(400, error_body(messages))
    if not services.secrets.accepts(secret):
        return Reply(400, string_body("wrong secret"))
    if not is_token_shaped(token):
        return TOKEN_NOT_FOUND
    attempt = _attempt(params.get("attempt", ""))
    claim, lease_until = await services.queue.set_state(
        token,
        _SETTABLE[state],
        attempt=attempt,
    )
    # Extension headers: our HTTP workers use them to renew and fence the claim.
    return Reply(
        200,
        string_body("ok"),
        (
            (b"x-sdq-attempt", str(claim).encode()),
            (b"x-sdq-lease-until-ms", str(lease_until).encode()),
        ),
    )


def _attempt(raw: str) -> int | None:
    """The optional fencing extension: `attempt=<claim id>` (workers of ours send it)."""
    return int(raw) if raw.isascii() and raw.isdecimal() and len(raw) < 19 else None
