"""Builds the Redis client from the settings: the one place a Redis URL is parsed.

- `redis://[user:password@]host:port/db` and `rediss://…` (TLS) come from the URL; TLS
  options ride in its query string, as redis-py reads them, e.g.
  `rediss://:pw@redis:6380/0?ssl_ca_certs=/run/secrets/ca.pem` (certificates are
  verified by default; `ssl_cert_reqs=none` turns that off, for tests only).
- With SDQ_REDIS_SENTINELS (`host:port,…`), the primary of SDQ_REDIS_SENTINEL_SERVICE
  is asked of the sentinels instead, and asked again after a failover. The URL then
  still gives the primary's user, password, db and TLS; its host and port are unused.
  Sentinels often have no password of their own (or another one than the data
  nodes): theirs is SDQ_REDIS_SENTINEL_PASSWORD.
- With SDQ_REDIS_CLUSTER, a Redis Cluster client (redis-py's RedisCluster): the
  URL names its startup nodes, one or several (`redis://:pw@h1:7000,h2:7000`),
  and gives user, password and TLS as for one server; the client finds the other
  nodes and follows the slots as they move. A queue's keys share one hash tag, so
  one node serves each queue's scripts.
"""

from __future__ import annotations

from typing import Any
from urllib.parse import urlsplit, urlunsplit

from redis.asyncio import Redis, RedisCluster
from redis.asyncio.cluster import ClusterNode
from redis.asyncio.connection import BlockingConnectionPool, SSLConnection, parse_url
from redis.asyncio.sentinel import Sentinel, SentinelManagedConnection, SentinelManagedSSLConnection

from broker.settings import BrokerSettings

# Connections per cluster node (per process). RedisCluster has no blocking pool: past
# this many commands in flight to one node it raises MaxConnectionsError at once.
CLUSTER_MAX_CONNECTIONS = 1000


def create_redis(settings: BrokerSettings) -> Redis | RedisCluster:
    """A pooled client that answers strings; every call times out after SDQ_REDIS_TIMEOUT_S."""
    timeout = settings.redis_timeout_s
    url = settings.redis_url.get_secret_value()
    options: dict[str, Any] = {
        "decode_responses": True,
        "socket_timeout": timeout,
        "socket_connect_timeout": timeout,
        "health_check_interval": 30,
    }
    if settings.redis_sentinels:
        return _sentinel_primary(settings, url, options)
    if settings.redis_cluster:
        return _cluster(url, options)
    # A burst waits (up to the timeout) for a free connection instead of failing:
    # redis-py's default pool raises MaxConnectionsError past 100 commands in flight.
    pool = BlockingConnectionPool.from_url(url, max_connections=100, timeout=timeout, **options)
    return Redis.from_pool(pool)


class _SentinelPrimary(Redis):
    """The primary's client; closing it also closes the connections to the sentinels."""

    async def aclose(self, close_connection_pool: bool | None = None) -> None:
        await super().aclose(close_connection_pool)
        manager = getattr(self.connection_pool, "sentinel_manager", None)
        for sentinel in getattr(manager, "sentinels", ()):
            await sentinel.aclose()


def _sentinel_primary(settings: BrokerSettings, url: str, options: dict[str, Any]) -> Redis:
    node: dict[str, Any] = dict(parse_url(url))
    tls = node.pop("connection_class", None) is SSLConnection
    for unused in ("host", "port", "path"):
        node.pop(unused, None)
    sentinel_options: dict[str, Any] = {
        "socket_timeout": settings.redis_timeout_s,
        "socket_connect_timeout": settings.redis_timeout_s,
    }
    if settings.redis_sentinel_password is not None:
        sentinel_options["password"] = settings.redis_sentinel_password.get_secret_value()
    sentinel = Sentinel(  # type: ignore[no-untyped-call]  # redis-py leaves __init__ untyped
        [_host_port(entry) for entry in settings.redis_sentinels],
        sentinel_kwargs=sentinel_options,
    )
    primary: Redis = sentinel.master_for(
        settings.redis_sentinel_service,
        redis_class=_SentinelPrimary,
        connection_class=SentinelManagedSSLConnection if tls else SentinelManagedConnection,
        **{**node, **options},
    )
    return primary


class _Cluster(RedisCluster):
    """A RedisCluster that learns the cluster's layout before it routes its first command.

    redis-py's asyncio cluster client must be initialized before use (its
    maintainers' answer in redis/redis-py#3032). Commands issued while the first
    start-up is still under way are routed as if keyless and, under a burst (20
    concurrent first calls here), fail with AttributeError inside the client.
    `create_redis` is not async, so the start-up happens on the first command."""

    async def execute_command(self, *args: Any, **kwargs: Any) -> Any:
        await self.initialize()  # a no-op once the layout is known
        return await super().execute_command(*args, **kwargs)


def _cluster(url: str, options: dict[str, Any]) -> RedisCluster:
    parts = urlsplit(url)
    userinfo, at, hosts = parts.netloc.rpartition("@")
    entries = [entry for entry in hosts.split(",") if entry]
    first = urlunsplit(parts._replace(netloc=userinfo + at + entries[0]))
    node: dict[str, Any] = dict(parse_url(first))
    if node.pop("connection_class", None) is SSLConnection:
        node["ssl"] = True
    for unused in ("host", "port", "db"):  # db: a cluster has only 0 (BrokerSettings checks)
        node.pop(unused, None)
    startup = [ClusterNode(*_host_port(entry, 6379)) for entry in entries]
    return _Cluster(
        startup_nodes=startup,
        max_connections=CLUSTER_MAX_CONNECTIONS,
        **{**node, **options},
    )


def _host_port(entry: str, default_port: int = 26379) -> tuple[str, int]:
    """'host:port', '[v6]:port' or 'host' (the default port: 26379, Sentinel's)."""
    host, sep, port = entry.rpartition(":")
    if not sep or not port.isdecimal() or (":" in host and not host.endswith("]")):
        return entry.strip("[]"), default_port
    return host.strip("[]"), int(port)
