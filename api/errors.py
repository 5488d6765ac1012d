"""Every way a request can fail, and how each surface answers it: one table per surface.

    Exception
    ├── broker.errors.BrokerError      StorageUnavailable, JobNotFound, InvalidTransition,
    │                                  StaleClaim, TokenExists, TooManyOpenJobs, ...
    │                                  TooManyOpenImages, IdempotencyConflict, ...
    ├── CaptchaFailed                  hCaptcha refused the captcha, or could not be asked
    ├── RateLimited                    the client used up its request rate (api/abuse.py)
    ├── QueueFull                      a new job would wait past SDQ_MAX_WAIT_S (api/submit.py)
    └── Rejected                       a request refused with its own reasons (validation)

A surface looks the exception up in its table (`problem(exc, TABLE)`) and
renders the Problem in its own shape: the legacy contract as one JSON string
(api/legacy/format.py), v2 as `{"errors": [{"field", "message"}]}`, the backend
extension as `{"error": "..."}`. No route builds an error body of its own.
HTTP errors of the framework itself (404, 405) stay starlette HTTPExceptions,
which api/v2/errors.py renders in the same shapes; a body over
SDQ_MAX_BODY_BYTES is refused by FastAPI's own limit (413, plain text) before
any route sees it.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

from api.throttled_log import ThrottledLog
from broker.errors import (
    IdempotencyConflict,
    InvalidTransition,
    JobCancelled,
    JobNotFound,
    StaleClaim,
    StorageUnavailable,
    TooManyOpenImages,
    TooManyOpenJobs,
    TooManyStreams,
)

log = logging.getLogger(__name__)
throttled = ThrottledLog(log)  # per process: a flood of any kind is one line per interval


@dataclass(frozen=True, slots=True)
class FieldError:
    """One failed check: the field at fault ("" when none is) and the contract's message."""

    field: str
    message: str


class CaptchaFailed(Exception):
    """The captcha was not verified: refused, or hCaptcha could not be asked."""


class RateLimited(Exception):
    """The client has used up its request rate; it may retry after `retry_after_s`."""

    def __init__(self, retry_after_s: int) -> None:
        super().__init__(f"rate limited for {retry_after_s} s")
        self.retry_after_s = retry_after_s


class QueueFull(Exception):
    """A new job would wait longer than SDQ_MAX_WAIT_S (estimated from the work ahead);
    nothing was added. `retry_after_s`: about when the wait is back under the limit."""

    def __init__(self, wait_s: int, retry_after_s: int) -> None:
        super().__init__(f"estimated wait {wait_s} s")
        self.wait_s = wait_s
        self.retry_after_s = retry_after_s
        self.fields = {"wait_s": wait_s}


class Rejected(Exception):
    """A request refused with every reason it has (e.g. all the failed field checks)."""

    def __init__(self, status: int, errors: Sequence[FieldError]) -> None:
        super().__init__(status, errors)
        self.status = status
        self.errors = tuple(errors)


@dataclass(frozen=True, slots=True)
class Problem:
    """What a surface answers: a status, the reasons, and when to retry (429)."""

    status: int
    errors: tuple[FieldError, ...]
    retry_after_s: int | None = None

    @property
    def messages(self) -> list[str]:
        return [error.message for error in self.errors]


Table = Mapping[type[Exception], tuple[int, FieldError]]

# When to try again, for refusals that carry no time of their own.
RETRY_AFTER_S: Mapping[type[Exception], int] = {TooManyStreams: 5}

INTERNAL = Problem(500, (FieldError("", "internal error"),))

# The legacy contract's statuses and messages (CONTRACT.md), extensions included.
LEGACY: Table = {
    StorageUnavailable: (500, FieldError("", "storage unavailable")),
    JobNotFound: (404, FieldError("token", "token not found")),
    InvalidTransition: (400, FieldError("state", "invalid state transition")),
    StaleClaim: (409, FieldError("fence", "stale claim")),
    CaptchaFailed: (400, FieldError("captcha", "captcha failed")),
    RateLimited: (429, FieldError("", "too many requests")),
    TooManyOpenJobs: (429, FieldError("", "too many open jobs")),
    TooManyOpenImages: (429, FieldError("", "too many open images")),
    # The legacy frontend shows any 400 body; it never reads a 503.
    QueueFull: (400, FieldError("", "queue full: about {wait_s} s of work ahead, try later")),
}

V2: Table = {
    StorageUnavailable: (503, FieldError("", "storage unavailable")),
    JobNotFound: (404, FieldError("token", "token not found")),
    InvalidTransition: (409, FieldError("token", "the job is finished: nothing to cancel")),
    CaptchaFailed: (400, FieldError("captcha", "captcha failed")),
    RateLimited: (429, FieldError("", "too many requests")),
    TooManyOpenJobs: (429, FieldError("", "too many open jobs")),
    TooManyStreams: (429, FieldError("", "too many event streams")),
    TooManyOpenImages: (429, FieldError("", "too many open images")),
    QueueFull: (503, FieldError("", "queue full: a new job would wait about {wait_s} s")),
    IdempotencyConflict: (
        422,
        FieldError("idempotency-key", "this Idempotency-Key was used for another request"),
    ),
}

# The backend extension (/backend/*): a worker tells our 404 from a server without it.
BACKEND: Table = {
    StorageUnavailable: (503, FieldError("", "storage unavailable")),
    JobNotFound: (404, FieldError("token", "token not found")),
    StaleClaim: (409, FieldError("fence", "stale claim")),
    JobCancelled: (409, FieldError("token", "job cancelled")),  # the worker stops
    InvalidTransition: (409, FieldError("token", "job is not pending")),
    RateLimited: (429, FieldError("", "too many requests")),
}


def problem(exc: Exception, table: Table) -> Problem | None:
    """The surface's answer to `exc`; None when the table does not know it (a bug)."""
    if isinstance(exc, Rejected):
        return Problem(exc.status, exc.errors)
    for kind in type(exc).__mro__:
        entry = table.get(kind)
        if entry is not None:
            if isinstance(exc, StorageUnavailable):
                throttled.log(logging.ERROR, "storage", "storage unavailable: %s", exc)
            status, error = entry
            fields = getattr(exc, "fields", None)  # values a message names ({wait_s})
            if fields:
                error = FieldError(error.field, error.message.format(**fields))
            retry = getattr(exc, "retry_after_s", None) or RETRY_AFTER_S.get(kind)
            return Problem(status, (error,), retry)
    return None


def unexpected(where: str, exc: BaseException) -> Problem:
    """An error no table knows (a bug): logged as one line per interval, answered as a
    plain 500 "internal error" that says nothing of the cause."""
    throttled.unexpected(where, exc)
    return INTERNAL
