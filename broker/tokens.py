"""A job's token: the one definition of its shape, and where new ones come from.

A token is 32 lower-case hex characters from a cryptographic RNG (128 bits). It
names the job in Redis, in image keys and URLs, and it is the v2 API's
capability (whoever holds it may read or cancel the job), so anything that is
not token-shaped is never looked up, stored or served.
"""

from __future__ import annotations

import re
import secrets

TOKEN_LENGTH = 32
_TOKEN = re.compile(r"[0-9a-f]{32}", re.ASCII)


def new_token() -> str:
    return secrets.token_hex(TOKEN_LENGTH // 2)


def is_token(text: str) -> bool:
    """Only 32 lower-case hex characters can name a job."""
    return _TOKEN.fullmatch(text) is not None
