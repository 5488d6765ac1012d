"""Builds the Redis client from the settings: the one place a Redis URL is parsed."""

from __future__ import annotations

from redis.asyncio import Redis
from redis.asyncio.sentinel import Sentinel

from broker.settings import BrokerSettings


def create_redis(settings: BrokerSettings) -> Redis:
    """A pooled client. `redis://`, `rediss://` (TLS) and passwords come from the URL;
    with `SDQ_REDIS_SENTINELS` set, the primary is found through Sentinel instead."""
    timeout = settings.redis_timeout_s
    url = settings.redis_url.get_secret_value()
    if settings.redis_sentinels:
        return _sentinel_primary(settings, url, timeout)
    return Redis.from_url(
        url,
        decode_responses=True,
        socket_timeout=timeout,
        socket_connect_timeout=timeout,
        health_check_interval=30,
    )


def _sentinel_primary(settings: BrokerSettings, url: str, timeout: float) -> Redis:
    template = Redis.from_url(url)
    kwargs = template.connection_pool.connection_kwargs
    hosts = [_host_port(entry) for entry in settings.redis_sentinels]
    sentinel = Sentinel(  # type: ignore[no-untyped-call]  # redis-py leaves __init__ untyped
        hosts,
        socket_timeout=timeout,
        sentinel_kwargs={"socket_timeout": timeout, "password": kwargs.get("password")},
    )
    primary: Redis = sentinel.master_for(
        settings.redis_sentinel_service,
        decode_responses=True,
        socket_timeout=timeout,
        socket_connect_timeout=timeout,
        password=kwargs.get("password"),
        db=kwargs.get("db", 0),
    )
    return primary


def _host_port(entry: str) -> tuple[str, int]:
    """'host:port' or 'host' (port 26379, Sentinel's default)."""
    host, sep, port = entry.rpartition(":")
    if not sep or not port.isdecimal():
        return entry, 26379
    return host, int(port)
