"""The four legacy endpoints. Each parses, makes one broker call and renders.

Handlers return a LegacyReply, or raise; the router (api/legacy/router.py) owns
the HTTP framing, and turns what they raise into the contract's status and
message through api/errors.py's LEGACY table.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import NamedTuple

from api.errors import Rejected
from api.legacy.format import error_body, next_job_body, status_body, string_body
from api.legacy.rules import JobRequest, check_job_request, check_token
from api.services import Services
from api.submit import submit
from broker.errors import JobNotFound
from broker.states import JobState
from broker.tokens import is_token

Params = Mapping[str, str]


class LegacyReply(NamedTuple):
    status: int
    body: bytes
    headers: tuple[tuple[bytes, bytes], ...] = ()


_SETTABLE = {"pending": JobState.PENDING, "complete": JobState.COMPLETE}


def _bad_request(messages: list[str]) -> LegacyReply:
    return LegacyReply(400, error_body(messages))


async def add_job(
    services: Services, params: Params, secret: str, client: str | None
) -> LegacyReply:
    request = check_job_request(
        params.get("prompt", ""),
        params.get("number", ""),
        params.get("resolution", ""),
        params.get("captcha", ""),
    )
    if not isinstance(request, JobRequest):
        raise Rejected(400, request)
    added = await submit(services, request, client)
    return LegacyReply(200, string_body(added.token))


async def get_job_status(
    services: Services, params: Params, secret: str, client: str | None
) -> LegacyReply:
    token = params.get("token", "")
    errors = check_token(token)
    if errors:
        raise Rejected(400, errors)
    if not is_token(token):
        raise JobNotFound(token)
    return LegacyReply(200, status_body(await services.queue.status(token)))


async def get_next_job(
    services: Services, params: Params, secret: str, client: str | None
) -> LegacyReply:
    if secret == "":
        return _bad_request(["missing secret"])
    if not await _authenticated(services, secret, client):
        return _bad_request(["wrong secret"])
    job = await services.queue.next_job()
    if job is None:
        return LegacyReply(404, string_body("no more jobs"))
    return LegacyReply(200, next_job_body(job))


async def set_job_status(
    services: Services, params: Params, secret: str, client: str | None
) -> LegacyReply:
    token, state = params.get("token", ""), params.get("state", "")
    messages = [error.message for error in check_token(token)]
    if secret == "":
        messages.append("missing secret")
    if state == "":
        messages.append("missing state")
    elif state not in _SETTABLE:
        messages.append("invalid value for state")
    if messages:
        return _bad_request(messages)
    if not await _authenticated(services, secret, client):
        return _bad_request(["wrong secret"])
    if not is_token(token):
        raise JobNotFound(token)
    fence, lease_until = await services.queue.set_state(
        token, _SETTABLE[state], fence=_fence(params.get("fence", ""))
    )
    # Extension headers: our HTTP workers use them to renew and fence the claim.
    return LegacyReply(
        200,
        string_body("ok"),
        (
            (b"x-sdq-fence", str(fence).encode()),
            (b"x-sdq-lease-until-ms", str(lease_until).encode()),
        ),
    )


async def _authenticated(services: Services, secret: str, client: str | None) -> bool:
    """A backend secret, compared in constant time; a client past its rate of failures
    is refused (429) whatever it sends (api/abuse.py)."""
    return await services.abuse.authenticate(services.secrets, secret, services.clients.key(client))


def _fence(raw: str) -> int | None:
    """The optional fencing extension: `fence=<x-sdq-fence>` (workers of ours send it)."""
    return int(raw) if raw.isascii() and raw.isdecimal() and len(raw) < 19 else None
