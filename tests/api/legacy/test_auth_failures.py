"""Wrong backend secrets are rated per client (issue: wrong-secret attempts were answered
as fast as they were asked). Past SDQ_BACKEND_AUTH_FAILURES, every secret the client
sends is refused (429) until the window passes, the right one too."""

from __future__ import annotations

import httpx
import pytest
from redis.asyncio import Redis

from api.settings import ApiSettings
from tests.api.test_rate_limit import serve
from tests.conftest import BACKEND_SECRET

ATTACKER, WORKER = "203.0.113.66", "10.1.2.3"


async def next_job(client: httpx.AsyncClient, secret: str) -> httpx.Response:
    return await client.get("/getNextJob", params={"secret": secret})


async def test_a_client_guessing_secrets_is_stopped_and_then_refused_even_the_right_one(
    redis: Redis, settings: ApiSettings
) -> None:
    async with serve(settings, redis, backend_auth_failures="3/minute") as at:
        attacker, worker = at(ATTACKER), at(WORKER)
        guesses = [await next_job(attacker, f"guess-{i}") for i in range(3)]
        assert [(r.status_code, r.content) for r in guesses] == [(400, b'"wrong secret"\n')] * 3
        stopped = await next_job(attacker, "guess-3")
        right = await next_job(attacker, BACKEND_SECRET)
        assert (stopped.status_code, stopped.content) == (429, b'"too many requests"\n')
        assert (right.status_code, right.content) == (429, b'"too many requests"\n')
        assert 1 <= int(right.headers["retry-after"]) <= 60
        assert (await next_job(worker, BACKEND_SECRET)).status_code == 404  # no jobs; not 429


async def test_failed_secrets_count_across_replicas_and_endpoints(
    redis: Redis, settings: ApiSettings
) -> None:
    async with (
        serve(settings, redis, backend_auth_failures="2/minute") as one,
        serve(settings, redis, backend_auth_failures="2/minute") as two,
    ):
        assert (await next_job(one(ATTACKER), "a")).status_code == 400
        params = {"token": "0" * 32, "state": "pending", "secret": "b"}
        assert (await two(ATTACKER).get("/setJobStatus", params=params)).status_code == 400
        lease = await two(ATTACKER).post(
            "/backend/lease",
            params={"token": "0" * 32, "fence": 1},
            headers={"Authorization": "Bearer c"},
        )
        assert (lease.status_code, lease.json()) == (429, {"error": "too many requests"})


@pytest.mark.parametrize("failures", ["", "5/minute"])
async def test_the_right_secret_is_always_accepted_from_a_client_that_never_failed(
    redis: Redis, settings: ApiSettings, failures: str
) -> None:
    async with serve(settings, redis, backend_auth_failures=failures) as at:
        worker = at(WORKER)
        assert [(await next_job(worker, BACKEND_SECRET)).status_code for _ in range(20)] == [
            404
        ] * 20
