"""No secret reaches a log line: not `secret=` in any spelling Go would read, not the
Authorization header, not the captcha, with the access log on and every logger at DEBUG."""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator

import httpx
import pytest
from redis.asyncio import Redis

from api.access_log import redact_query
from api.app import create_app
from api.settings import ApiSettings
from tests.conftest import BACKEND_SECRET, HCAPTCHA_SECRET, ROTATED_SECRET

CAPTCHA = "good-captcha-response-7f3a"
ADD = f"prompt=hello&number=1&resolution=768x576&captcha={CAPTCHA}"


@pytest.fixture
async def logged_client(
    redis: Redis, settings: ApiSettings, caplog: pytest.LogCaptureFixture
) -> AsyncIterator[httpx.AsyncClient]:
    caplog.set_level(logging.DEBUG)
    app = create_app(settings.model_copy(update={"access_log": True}), redis=redis)
    async with app.router.lifespan_context(app):
        transport = httpx.ASGITransport(app=app, client=("203.0.113.7", 50000))
        async with httpx.AsyncClient(transport=transport, base_url="http://sdq.test") as http:
            yield http


async def test_secrets_access_log_is_written(
    logged_client: httpx.AsyncClient, caplog: pytest.LogCaptureFixture
) -> None:
    await logged_client.get("/getNextJob?secret=x")
    lines = [r.getMessage() for r in caplog.records if r.name == "sdq.access"]
    assert lines and '"GET /getNextJob?secret=***" 400' in lines[-1]


async def test_secrets_never_logged(
    logged_client: httpx.AsyncClient, caplog: pytest.LogCaptureFixture
) -> None:
    token = (await logged_client.get(f"/addJob?{ADD}")).json()
    queries = [
        f"/getNextJob?secret={BACKEND_SECRET}",
        f"/getNextJob?SECRET={BACKEND_SECRET}&secret={ROTATED_SECRET}",
        f"/getNextJob?s%65cret={BACKEND_SECRET}",
        f"/getNextJob?%73ecret={ROTATED_SECRET}",
        f"/getNextJob?x=1;secret={BACKEND_SECRET}",
        f"/getNextJob?secret={BACKEND_SECRET};x=1",
        f"/getNextJob?secret=%{BACKEND_SECRET}",
        f"/setJobStatus?token={token}&state=pending&secret={BACKEND_SECRET}",
        f"/setJobStatus?secret={ROTATED_SECRET}&token={token}&state=complete",
        f"/setJobStatus?token={token}&state=bogus&secret={BACKEND_SECRET}",
        f"/addJob?{ADD}&secret={BACKEND_SECRET}",
        f"/addJob?captcha={CAPTCHA}",
    ]
    for query in queries:
        reply = await logged_client.get(query)
        assert reply.status_code < 500
    for method in ("GET", "POST", "HEAD"):
        await logged_client.request(
            method, "/getNextJob", headers={"Authorization": f"Bearer {ROTATED_SECRET}"}
        )
    await logged_client.get("/setJobStatus?token=1", headers={"Authorization": "Bearer nope-42"})

    access = [r for r in caplog.records if r.name == "sdq.access"]
    assert len(access) == len(queries) + 5  # every request logged, once
    service_lines = "\n".join(
        f"{record.getMessage()} {record.args} {record.exc_text}"
        for record in service_records(caplog)
    )
    for secret in (BACKEND_SECRET, ROTATED_SECRET, CAPTCHA, HCAPTCHA_SECRET, "nope-42"):
        assert secret not in service_lines


def service_records(caplog: pytest.LogCaptureFixture) -> list[logging.LogRecord]:
    """Everything logged, less the test's own HTTP client noting the URLs it sent."""
    return [
        record
        for record in caplog.records
        if not (record.name == "httpx" and "http://sdq.test/" in record.getMessage())
    ]


@pytest.mark.parametrize(
    ("query", "logged"),
    [
        (b"secret=abc", "secret=***"),
        (b"token=t&secret=abc&state=pending", "token=t&secret=***&state=pending"),
        (b"Secret=abc", "Secret=***"),
        (b"s%65cret=abc", "s%65cret=***"),
        (b"s%65cr%65t=abc&captcha=xyz", "s%65cr%65t=***&captcha=***"),
        (b"x=1;secret=abc&y=2", "x=1;secret=***&y=2"),
        (b"secret", "secret"),
        (b"secrets=abc", "secrets=***"),  # near misses are hidden too
        (b"secret%00=abc", "secret%00=***"),
        (b"secret2=abc&Secret_Key=def", "secret2=***&Secret_Key=***"),
        (b"prompt=my+secret=abc", "prompt=my+secret=abc"),
        (b"", ""),
    ],
)
def test_redact_query_hides_every_secret_value(query: bytes, logged: str) -> None:
    assert redact_query(query) == logged


async def test_a_secret_in_a_path_parameter_is_never_logged(
    logged_client: httpx.AsyncClient, caplog: pytest.LogCaptureFixture
) -> None:
    await logged_client.get(f"/getNextJob;secret={BACKEND_SECRET}?x=1")
    lines = [r.getMessage() for r in caplog.records if r.name == "sdq.access"]
    assert lines and '"GET /getNextJob;***?x=1"' in lines[-1]
    assert all(BACKEND_SECRET not in line for line in lines)


@pytest.mark.parametrize("forged", ["%0a", "%0d%0a", "%1b[31m", "%00", "%e2%80%a8"])
async def test_the_access_log_cannot_be_forged_through_the_path(
    logged_client: httpx.AsyncClient, caplog: pytest.LogCaptureFixture, forged: str
) -> None:
    """`%0a` in a path once started a new, attacker-written log line."""
    await logged_client.get(f'/v2/jobs/x{forged}203.0.113.9 "GET /admin" 200 1.0ms')
    await logged_client.get(f"/getJobStatus?token=x{forged}FORGED")
    lines = [r.getMessage() for r in caplog.records if r.name == "sdq.access"]
    assert len(lines) == 2
    for line in lines:
        assert line.isprintable() and line.isascii()
