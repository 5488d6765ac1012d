"""Which secrets the service refuses to start with.

A backend secret reads every prompt and can mark any job complete; the hCaptcha
secret decides who may queue GPU work. Both are refused at start-up when they
are short enough to guess, or a placeholder somebody forgot to replace (the
values .env.example used to ship, anything starting `change-me`). `.env.example`
now ships empty values, so a forgotten secret fails closed.
"""

from __future__ import annotations

MIN_LENGTH = 24

# Values that shipped as examples; a test keeps .env.example from adding new ones.
PLACEHOLDERS = frozenset({"change-me-to-a-long-random-string", "change-me", "changeme"})


def secret_problem(secret: str) -> str | None:
    """Why `secret` is unsafe to run with, or None. Never quotes the secret."""
    folded = secret.strip().lower()
    if folded in PLACEHOLDERS or folded.startswith(("change-me", "changeme", "change_me")):
        return "is a placeholder: generate one, e.g. `openssl rand -base64 32`"
    if len(secret) < MIN_LENGTH:
        return (
            f"is shorter than {MIN_LENGTH} characters: generate one, e.g. `openssl rand -base64 32`"
        )
    return None
