"""Loads the Lua scripts of broker/lua/ once and turns their error codes into exceptions.

Every script returns a list whose first element is a status code: 'OK', or one
of the codes below. `raise_for_code` is the only place that maps a code to an
exception; callers of `run` see either the reply after the code or an error.
`Scripts.values` is the only place that checks a reply's shape: the values after
'OK' must be as many as the script's header says (`REPLY_LENGTHS`), or the call is a
BrokerError, never a ValueError of an unpacking caller (a Lua table with a hole, a
nil from a field that is gone, ends the reply early).
The same calls work on one Redis server and on a Redis Cluster: each script gets
every key it touches in KEYS (broker/keys.py, SCRIPT_KEYS), all in one hash slot,
so the cluster client sends it to the node that owns them.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from functools import cache
from importlib import resources
from typing import Any

from redis.asyncio import Redis, RedisCluster
from redis.commands.core import AsyncScript
from redis.exceptions import NoScriptError

from broker.errors import (
    BrokerError,
    IdempotencyConflict,
    InvalidJob,
    InvalidTransition,
    JobCancelled,
    JobNotFound,
    StaleClaim,
    TokenExists,
    TooManyOpenImages,
    TooManyOpenJobs,
    TooManyStreams,
)

__all__ = ["REPLY_LENGTHS", "Scripts", "raise_for_code", "script_names", "script_source"]

_INCLUDE = re.compile(r"^--@include (\S+)$", re.MULTILINE)

_ERRORS: dict[str, type[BrokerError]] = {
    "NOT_FOUND": JobNotFound,
    "BAD_TRANSITION": InvalidTransition,
    "STALE_CLAIM": StaleClaim,
    "TOKEN_EXISTS": TokenExists,
    "TOO_MANY_OPEN": TooManyOpenJobs,
    "TOO_MANY_STREAMS": TooManyStreams,
    "TOO_MANY_IMAGES": TooManyOpenImages,
    "IDEMPOTENCY_MISMATCH": IdempotencyConflict,
    "BAD_STATE": InvalidJob,
    "CANCELLED": JobCancelled,
}

# How many values each script returns after 'OK' (its header's Returns; several
# when it has several shapes). tests/broker/test_lua_headers.py checks them there.
REPLY_LENGTHS: dict[str, frozenset[int]] = {
    name: frozenset(lengths)
    for name, lengths in {
        "add_job": (3,),
        "admin_status": (8,),
        "cancel_client": (2,),
        "cancel_job": (1,),
        "claim_job": (0, 8),
        "get_preview": (0, 1),
        "get_status": (9,),
        "hold_client_slot": (0,),
        "hold_stream": (0,),
        "import_job": (1,),
        "job_details": (24,),
        "next_job": (0, 5),
        "queue_figures": (16,),
        "record_renders": (1,),
        "release_client_slot": (1,),
        "release_job": (1,),
        "release_stream": (1,),
        "renew_lease": (1,),
        "requeue_expired": (6,),
        "retry_job": (0,),
        "set_paused": (1,),
        "set_state": (2,),
        "take_due_images": (1,),
        "wait_estimate": (7,),
    }.items()
}
Call = tuple[list[str], list[str | int]]  # one script call's KEYS and ARGV


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

    def __init__(self, redis: Redis | RedisCluster) -> None:
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
        return self.values(name, reply)

    @staticmethod
    def values(name: str, reply: Any) -> list[Any]:
        """The values of a script's reply after 'OK', checked against its shape; raises
        the code's exception, or BrokerError for a reply of the wrong shape."""
        if not isinstance(reply, list) or not reply:
            raise BrokerError(f"{name}.lua: not a script reply: {type(reply).__name__}")
        values = raise_for_code(reply)
        if len(values) not in REPLY_LENGTHS[name]:
            expected = " or ".join(str(n) for n in sorted(REPLY_LENGTHS[name]))
            raise BrokerError(f"{name}.lua: a reply of {len(values)} values, not {expected}")
        return values

    async def run_many(self, name: str, calls: Sequence[Call]) -> list[list[Any]]:
        """Many calls of one script in one pipelined round trip; returns each raw reply
        (status code included), in order.

        A pipeline cannot reload a script halfway, and a cluster pipeline has no
        EVALSHA method (redis-py blocks it): the calls go as raw EVALSHA commands,
        and those a server answers NOSCRIPT (a restart, a new node) are sent again
        once after SCRIPT LOAD, which a cluster client sends to every primary."""
        script = self._scripts[name]
        replies: list[list[Any] | None] = [None] * len(calls)
        todo = list(range(len(calls)))
        for attempt in range(2):
            if attempt:
                await self._redis.script_load(script.script)
            async with self._redis.pipeline(transaction=False) as pipe:
                for i in todo:
                    keys, args = calls[i]
                    pipe.execute_command("EVALSHA", script.sha, len(keys), *keys, *args)
                results = await pipe.execute(raise_on_error=False)
            missing = []
            for i, result in zip(todo, results, strict=True):
                if isinstance(result, NoScriptError):
                    missing.append(i)
                elif isinstance(result, Exception):
                    raise result
                else:
                    replies[i] = result
            todo = missing
            if not todo:
                break
        if todo:
            raise NoScriptError(f"{name}.lua not loaded after SCRIPT LOAD")
        return [reply for reply in replies if reply is not None]
