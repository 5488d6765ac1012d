"""How the queue calls its scripts: each call's KEYS, exactly as the script's header
lists them, in its order (broker/keys.py, SCRIPT_KEYS), built once per script, on one
Redis server or a Redis Cluster alike; and any Redis failure as StorageUnavailable.
`Queue` (broker/queue.py) adds one typed call per script on top.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from functools import wraps
from typing import Any, ParamSpec, TypeVar

from redis.asyncio import Redis, RedisCluster
from redis.exceptions import RedisError

from broker.errors import StorageUnavailable
from broker.keys import SCRIPT_KEYS, QueueKeys, fixed_keys
from broker.lua import Scripts
from broker.settings import BrokerSettings

__all__ = ["ScriptCalls", "storage_errors"]

P = ParamSpec("P")
T = TypeVar("T")


def storage_errors(call: Callable[P, Awaitable[T]]) -> Callable[P, Awaitable[T]]:
    """Any Redis failure surfaces as StorageUnavailable, never as a raw client error."""

    @wraps(call)
    async def wrapper(*args: P.args, **kwargs: P.kwargs) -> T:
        try:
            return await call(*args, **kwargs)
        except (RedisError, OSError) as exc:
            raise StorageUnavailable(type(exc).__name__) from exc

    return wrapper


class ScriptCalls:
    """The script calls of one queue in Redis, by name, with their KEYS built."""

    def __init__(self, redis: Redis | RedisCluster, settings: BrokerSettings) -> None:
        self.redis = redis
        self.settings = settings
        self.keys = QueueKeys(settings.key_prefix)
        self._scripts = Scripts(redis)
        # built once: the status call is the hot path
        self._fixed = {script: fixed_keys(self.keys, script) for script in SCRIPT_KEYS}
        self._job_prefix = self.keys.job_prefix
        self._with_preview = {name for name, keys in SCRIPT_KEYS.items() if "preview" in keys}

    def _keys(
        self, script: str, token: str | None = None, client: str = "", idem: str = ""
    ) -> list[str]:
        """The script's KEYS: the job's own key first when the call is about one job
        (and its preview's last, where the script touches that), the client's zset (of
        jobs, or of event streams) last when it names one, the request's
        Idempotency-Key record (add_job: the bare prefix when there is none) just
        before."""
        keys = self._fixed[script]
        if token is not None:
            keys = [self._job_prefix + token, *keys]
            if script in self._with_preview:
                keys.append(self.keys.preview(token))
        if idem:
            keys = [self.keys.idem_for(idem) if key == self.keys.idem else key for key in keys]
        if client:
            per_client = self.keys.streams if "streams" in SCRIPT_KEYS[script] else self.keys.client
            keys = [*keys, per_client(client)]
        return keys

    async def _run(
        self,
        script: str,
        args: list[str | int],
        token: str | None = None,
        client: str = "",
        idem: str = "",
    ) -> list[Any]:
        return await self._scripts.run(script, self._keys(script, token, client, idem), args)

    @storage_errors
    async def call(
        self, script: str, args: list[str | int], token: str | None = None, client: str = ""
    ) -> list[Any]:
        """One script call with its KEYS built as for the typed calls: for the modules
        that add views of their own (broker/admin.py, broker/admission.py)."""
        return await self._run(script, args, token, client)
