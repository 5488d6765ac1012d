"""Backend secrets: several at once (for rotation), compared in constant time."""

from __future__ import annotations

import hmac
from collections.abc import Iterable


class BackendSecrets:
    def __init__(self, secrets: Iterable[str]) -> None:
        self._secrets = [secret.encode() for secret in secrets if secret]

    def accepts(self, candidate: str) -> bool:
        """True if candidate equals any configured secret. Every secret is compared,
        so the time taken says nothing about which one matched or how much of it."""
        given = candidate.encode("utf-8", "surrogateescape")
        matched = False
        for secret in self._secrets:
            matched |= hmac.compare_digest(given, secret)
        return matched


def bearer_token(authorization: str | None) -> str:
    """The secret of an `Authorization: Bearer <secret>` header, or ''."""
    if not authorization:
        return ""
    scheme, _, value = authorization.partition(" ")
    return value.strip() if scheme.lower() == "bearer" else ""
