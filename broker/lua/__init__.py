"""Loads the Lua scripts of broker/lua/ once and turns their error codes into exceptions.

Every script returns a list whose first element is a status code: 'OK', or one
of the codes below. `raise_for_code` is the only place that maps a code to an
exception; callers of `run` see either the reply after the code or an error.
"""

from __future__ import annotations

import re
from functools import cache
from importlib import resources
from typing import Any

from redis.asyncio import Redis
from redis.commands.core import AsyncScript
from redis.exceptions import NoScriptError

from broker.errors import (
    BrokerError,
    InvalidTransition,
    JobNotFound,
    StaleClaim,
    TokenExists,
    TooManyOpenJobs,
)

__all__ = ["Scripts", "raise_for_code", "script_names", "script_source"]

_INCLUDE = re.compile(r"^--@include (\S+)$", re.MULTILINE)

_ERRORS: dict[str, type[BrokerError]] = {
    "NOT_FOUND": JobNotFound,
    "BAD_TRANSITION": InvalidTransition,
    "STALE_CLAIM": StaleClaim,
    "TOKEN_EXISTS": TokenExists,
    "TOO_MANY_OPEN": TooManyOpenJobs,
}


def script_names() -> list[str]:
    """One script per operation: every .lua file whose name does not start with '_'."""
    folder = resources.files("broker.lua")
    return sorted(
        entry.name.removesuffix(".lua")
        for entry in folder.iterdir()
        if entry.name.endswith(".lua") and not entry.name.startswith("_")
    )


@cache
def script_source(name: str) -> str:
    """The script's text with its `--@include` lines replaced by the included files."""
    folder = resources.files("broker.lua")
    text = (folder / f"{name}.lua").read_text(encoding="utf-8")
    return _INCLUDE.sub(lambda m: (folder / m.group(1)).read_text(encoding="utf-8"), text)


def raise_for_code(reply: list[Any]) -> list[Any]:
    """Returns the values after 'OK', or raises the exception for the script's code."""
    code = reply[0]
    if code == "OK":
        return reply[1:]
    error = _ERRORS.get(code)
    if error is None:
        raise BrokerError(f"unexpected script reply {code!r}")
    raise error(code)


class Scripts:
    """The registered scripts of one Redis client, called by name.

    redis-py's registered scripts call EVALSHA and reload the source on
    NOSCRIPT, so they survive a Redis restart that empties the script cache.
    """

    def __init__(self, redis: Redis) -> None:
        self._redis = redis
        self._scripts: dict[str, AsyncScript] = {
            name: redis.register_script(script_source(name)) for name in script_names()
        }

    async def run(self, name: str, keys: list[str], args: list[str | int]) -> list[Any]:
        script = self._scripts[name]
        try:  # EVALSHA straight away: the registered script's own call costs more
            reply = await self._redis.evalsha(script.sha, len(keys), *keys, *args)
        except NoScriptError:  # a restarted Redis: the registered script reloads itself
            reply = await script(keys=keys, args=args)
        return raise_for_code(reply)
