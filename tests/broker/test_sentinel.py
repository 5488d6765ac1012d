"""Redis Sentinel: a primary, a replica and three sentinels on loopback, with a
password on the data nodes (not on the sentinels). The API finds the primary through
the sentinels; the primary is SIGKILLed; after the failover the same app, unchanged,
serves again from the promoted replica, and the job it wrote before is still there."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from pydantic import SecretStr

from api.app import create_app
from api.settings import ApiSettings
from broker.connection import _host_port
from tests.support.redis_servers import Server, client, plain, wait_until

PASSWORD = "data-node-password"
SERVICE = "sdqprimary"
ADD = {"prompt": "a cat", "number": "1", "resolution": "768x576", "captcha": "good-1"}

pytestmark = pytest.mark.slow


class Topology:
    def __init__(self, folder: Path) -> None:
        auth = ("--requirepass", PASSWORD, "--masterauth", PASSWORD)
        self.primary = Server([])
        self.primary.args = plain(self.primary.port, *auth)
        self.replica = Server([])
        self.replica.args = plain(
            self.replica.port, *auth, "--replicaof", "127.0.0.1", str(self.primary.port)
        )
        self.sentinels = [Server([], log=folder / f"sentinel-{i}.log") for i in range(3)]
        for index, sentinel in enumerate(self.sentinels):
            conf = folder / f"sentinel-{index}.conf"
            conf.write_text(
                f"port {sentinel.port}\nbind 127.0.0.1\ndir {folder}\n"
                f"sentinel monitor {SERVICE} 127.0.0.1 {self.primary.port} 2\n"
                f"sentinel auth-pass {SERVICE} {PASSWORD}\n"
                f"sentinel down-after-milliseconds {SERVICE} 1000\n"
                f"sentinel failover-timeout {SERVICE} 10000\n"
            )
            sentinel.args = [str(conf), "--sentinel"]

    def servers(self) -> list[Server]:
        return [self.primary, self.replica, *self.sentinels]

    def sentinel_hosts(self) -> str:
        return ",".join(f"127.0.0.1:{sentinel.port}" for sentinel in self.sentinels)

    def wait_ready(self) -> None:
        replica = client(self.replica.port, PASSWORD)
        wait_until(
            lambda: replica.info("replication")["master_link_status"] == "up",
            30,
            "the replica follows the primary",
        )
        for sentinel in self.sentinels:
            watcher = client(sentinel.port)
            wait_until(
                lambda w=watcher: _sees_everyone(w.sentinel_master(SERVICE)),
                60,
                f"sentinel {sentinel.port} sees the replica and the other sentinels",
            )

    def primary_port(self) -> int:
        host_port = client(self.sentinels[0].port).sentinel_get_master_addr_by_name(SERVICE)
        return int(host_port[1])


def _sees_everyone(master: dict[str, object]) -> bool:
    return int(str(master["num-slaves"])) >= 1 and int(str(master["num-other-sentinels"])) >= 2


@pytest.fixture
def topology(tmp_path: Path) -> Iterator[Topology]:
    setup = Topology(tmp_path)
    try:
        for server in setup.servers():
            server.start()
        setup.wait_ready()
        yield setup
    finally:
        for server in setup.servers():
            server.kill()


def test_sentinel_host_list_entries() -> None:
    assert _host_port("10.0.0.5:26380") == ("10.0.0.5", 26380)
    assert _host_port("sentinel-1") == ("sentinel-1", 26379)
    assert _host_port("[fd00::5]:26381") == ("fd00::5", 26381)


async def test_sentinel_the_api_serves_again_after_the_primary_dies(
    topology: Topology, settings: ApiSettings
) -> None:
    own = settings.model_copy(
        update={
            # the URL's host is never used with sentinels: user, password and db are
            "redis_url": SecretStr(f"redis://:{PASSWORD}@unused.invalid:1/0"),
            "redis_sentinels": topology.sentinel_hosts().split(","),
            "redis_sentinel_service": SERVICE,
            "redis_timeout_s": 0.5,
            "addjob_rate": "100/minute",
            "max_open_jobs_per_client": 10,
        }
    )
    app = create_app(own)
    async with app.router.lifespan_context(app):
        transport = httpx.ASGITransport(app=app, client=("203.0.113.7", 1))
        async with httpx.AsyncClient(transport=transport, base_url="http://sdq.test") as api:
            reply = await api.get("/addJob", params=ADD)
            assert reply.status_code == 200, reply.content
            token = reply.json()
            old_primary = client(topology.primary.port, PASSWORD)
            assert old_primary.wait(1, 5000) == 1  # the replica has the job too
            topology.primary.kill()

            deadline = time.monotonic() + 60
            codes: list[int] = []
            while True:
                reply = await api.get("/getJobStatus", params={"token": token})
                codes.append(reply.status_code)
                if reply.status_code == 200:
                    break
                assert reply.status_code == 500, reply.content  # storage unavailable, meanwhile
                assert time.monotonic() < deadline, f"no failover within 60 s: {codes[-5:]}"
                await asyncio.sleep(0.2)
            assert reply.json()["State"] == "new"
            assert (await api.get("/addJob", params=ADD)).status_code == 200
            assert (await api.get("/readyz")).status_code == 200
    assert topology.primary_port() == topology.replica.port
