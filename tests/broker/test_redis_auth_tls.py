"""Redis with a password (requirepass) and over TLS (`rediss://`), each a real server on
loopback, reached by the real app through the URL alone: the right credentials serve,
wrong ones answer the contract's short 500 (and /readyz 503), and never leak."""

from __future__ import annotations

import logging
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
import redis
from pydantic import SecretStr

from api.app import create_app
from api.settings import ApiSettings
from tests.support.redis_servers import (
    Certificates,
    Server,
    client,
    make_certificates,
    plain,
    wait_until,
)

PASSWORD = "s3cret-redis-password"
ADD = {"prompt": "a cat", "number": "1", "resolution": "768x576", "captcha": "good-1"}


async def round_trip(settings: ApiSettings, url: str) -> tuple[int, int, int]:
    """(addJob status, getJobStatus status, readyz status) through an app on `url`."""
    app = create_app(settings.model_copy(update={"redis_url": SecretStr(url)}))
    async with app.router.lifespan_context(app):
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://sdq.test") as api:
            added = await api.get("/addJob", params=ADD)
            token = added.json() if added.status_code == 200 else "0" * 32
            status = await api.get("/getJobStatus", params={"token": token})
            ready = await api.get("/readyz")
    if added.status_code != 200:
        assert added.content == b'"storage unavailable"\n'
    return added.status_code, status.status_code, ready.status_code


@pytest.fixture
def password_server() -> Iterator[Server]:
    server = Server([])
    server.args = plain(server.port, "--requirepass", PASSWORD)
    server.start()
    try:
        wait_until(lambda: bool(client(server.port, PASSWORD).ping()), 10, "redis with a password")
        yield server
    finally:
        server.kill()


async def test_redis_password_from_the_url_is_used(
    password_server: Server, settings: ApiSettings
) -> None:
    url = f"redis://:{PASSWORD}@127.0.0.1:{password_server.port}/0"
    assert await round_trip(settings, url) == (200, 200, 200)


@pytest.mark.parametrize("credentials", ["", ":wrong-password@"])
async def test_redis_wrong_or_missing_password_is_storage_unavailable_and_not_logged(
    password_server: Server,
    settings: ApiSettings,
    credentials: str,
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.DEBUG)
    url = f"redis://{credentials}127.0.0.1:{password_server.port}/0"
    assert await round_trip(settings, url) == (500, 500, 503)
    assert "wrong-password" not in caplog.text and PASSWORD not in caplog.text


@pytest.fixture
def tls_server(tmp_path: Path) -> Iterator[tuple[Server, Certificates]]:
    certs = make_certificates(tmp_path)
    server = Server([], log=tmp_path / "redis.log")
    server.args = [
        *plain(0, "--requirepass", PASSWORD),
        *("--tls-port", str(server.port), "--tls-auth-clients", "no"),
        *("--tls-cert-file", str(certs.cert), "--tls-key-file", str(certs.key)),
        *("--tls-ca-cert-file", str(certs.ca)),
    ]
    server.start()

    def up() -> bool:
        if server.exited:
            log = (tmp_path / "redis.log").read_text(errors="replace")
            pytest.skip(f"this redis-server cannot serve TLS (built without it?): {log[-300:]}")
        tls = redis.Redis(
            host="127.0.0.1", port=server.port, password=PASSWORD, ssl=True, ssl_ca_certs=certs.ca
        )
        return bool(tls.ping())

    try:
        wait_until(up, 10, "redis over TLS")
        yield server, certs
    finally:
        server.kill()


async def test_redis_tls_with_the_ca_from_the_url_serves(
    tls_server: tuple[Server, Certificates], settings: ApiSettings
) -> None:
    server, certs = tls_server
    url = f"rediss://:{PASSWORD}@127.0.0.1:{server.port}/0?ssl_ca_certs={certs.ca}"
    assert await round_trip(settings, url) == (200, 200, 200)


async def test_redis_tls_refuses_a_server_it_cannot_verify(
    tls_server: tuple[Server, Certificates], settings: ApiSettings
) -> None:
    server, _ = tls_server
    url = f"rediss://:{PASSWORD}@127.0.0.1:{server.port}/0"  # the system CAs do not know it
    assert await round_trip(settings, url) == (500, 500, 503)


async def test_redis_plain_text_to_a_tls_port_is_storage_unavailable(
    tls_server: tuple[Server, Certificates], settings: ApiSettings
) -> None:
    server, _ = tls_server
    url = f"redis://:{PASSWORD}@127.0.0.1:{server.port}/0"
    assert await round_trip(settings, url) == (500, 500, 503)
