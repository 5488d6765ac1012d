"""Idempotent submits: `POST /v2/jobs` with an `Idempotency-Key` header.

A client that retries a submit (a timeout, a dropped connection) must not queue the
job twice. The same key from the same client (the key the abuse limits count on:
api/client_address.py) within 24 hours answers the first job's token instead of
adding another; broker/lua/add_job.lua checks and records the key atomically with
the add, so two racing requests with one key make one job. A replay is recognised
before the rate is counted and before the captcha is verified (hCaptcha responses
are single-use, and a retry would carry the spent one).

The request is the checked job (prompt after trimming and transliteration, number,
resolution): a retry with another captcha response is the same request. The same
key with a different request is refused with 422, as the IETF draft for the header
(draft-ietf-httpapi-idempotency-key-header) advises, and nothing is added. Keys
are 1..255 printable ASCII characters, e.g. a UUID; another value is a 400.
"""

from __future__ import annotations

import hashlib

from api.errors import FieldError, Rejected
from api.legacy.rules import JobRequest

HEADER = "Idempotency-Key"
MAX_KEY = 255


def check_key(value: str) -> str:
    """The header's value, or Rejected(400)."""
    if not 0 < len(value) <= MAX_KEY or not all(" " < ch <= "~" for ch in value):
        message = f"{HEADER} must be 1 to {MAX_KEY} printable ASCII characters, no spaces"
        raise Rejected(400, [FieldError("idempotency-key", message)])
    return value


def digest(client_key: str, key: str) -> str:
    """Names the key's record: one per client and key, neither readable from it."""
    return hashlib.sha256(f"{client_key}\n{key}".encode()).hexdigest()[:40]


def fingerprint(job: JobRequest) -> str:
    """What must match for a retry to be the same request (never the captcha)."""
    text = f"{job.prompt}\n{job.number}\n{job.width}x{job.height}"
    return hashlib.sha256(text.encode()).hexdigest()[:32]
