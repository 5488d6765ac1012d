"""/addJob abuse limits through the real app: a rate per client address (the `limits`
library on the queue's Redis) and a cap on one client's unfinished jobs. Neither ever
spends a captcha on a request it refuses; /getJobStatus is never limited."""

from __future__ import annotations

import asyncio
import json
import logging
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from ipaddress import ip_network
from typing import Any

import httpx
import pytest
from pydantic import SecretStr
from redis.asyncio import Redis

from api.app import create_app
from api.settings import ApiSettings
from broker.connection import create_redis
from sdq.doubles.fake_hcaptcha import FakeHCaptcha
from sdq.supervisor import free_port
from tests.conftest import BACKEND_SECRET, HCAPTCHA_SECRET
from tests.support.redis_servers import ClusterServers

ADD = {"prompt": "a cat", "number": "1", "resolution": "768x576", "captcha": "good-1"}
ALICE, BOB = "203.0.113.7", "198.51.100.20"

Clients = Callable[[str], httpx.AsyncClient]


@asynccontextmanager
async def serve(
    settings: ApiSettings, redis: Redis | None = None, **limits: Any
) -> AsyncIterator[Clients]:
    """The app with `limits` set; yields a function giving a client for a peer address."""
    app = create_app(settings.model_copy(update=limits), redis=redis)
    opened: list[httpx.AsyncClient] = []

    def client_at(peer: str) -> httpx.AsyncClient:
        transport = httpx.ASGITransport(app=app, client=(peer, 50000))
        opened.append(httpx.AsyncClient(transport=transport, base_url="http://sdq.test"))
        return opened[-1]

    async with app.router.lifespan_context(app):
        try:
            yield client_at
        finally:
            for client in opened:
                await client.aclose()


async def add_job(client: httpx.AsyncClient, **params: str) -> httpx.Response:
    return await client.get("/addJob", params={**ADD, **params})


async def finish_one(client: httpx.AsyncClient) -> None:
    job = (await client.get("/getNextJob", params={"secret": BACKEND_SECRET})).json()
    for state in ("pending", "complete"):
        params = {"token": job["Token"], "state": state, "secret": BACKEND_SECRET}
        assert (await client.get("/setJobStatus", params=params)).status_code == 200


async def test_rate_limit_answers_429_with_a_json_string_retry_after_and_cors(
    redis: Redis, settings: ApiSettings
) -> None:
    async with serve(settings, redis, addjob_rate="2/minute") as at:
        alice = at(ALICE)
        assert [(await add_job(alice)).status_code for _ in range(2)] == [200, 200]
        refused = await add_job(alice)
    assert (refused.status_code, refused.content) == (429, b'"too many requests"\n')
    assert refused.headers["content-type"] == "application/json"
    assert refused.headers["access-control-allow-origin"] == "*"
    assert 1 <= int(refused.headers["retry-after"]) <= 60


async def test_rate_limit_is_counted_per_client_address(
    redis: Redis, settings: ApiSettings
) -> None:
    async with serve(settings, redis, addjob_rate="1/minute") as at:
        assert (await add_job(at(ALICE))).status_code == 200
        assert (await add_job(at(ALICE))).status_code == 429
        assert (await add_job(at(BOB))).status_code == 200


async def test_rate_limit_counts_the_address_a_trusted_proxy_forwards(
    redis: Redis, settings: ApiSettings
) -> None:
    async with serve(
        settings, redis, addjob_rate="1/minute", trusted_proxies=[ip_network("10.0.0.0/8")]
    ) as at:
        proxy = at("10.0.0.2")
        for visitor, expected in [(ALICE, 200), (BOB, 200), (ALICE, 429)]:
            forwarded = {"x-forwarded-for": f"1.1.1.1, {visitor}"}  # 1.1.1.1: client-written
            reply = await proxy.get("/addJob", params=ADD, headers=forwarded)
            assert reply.status_code == expected


async def test_rate_limit_holds_across_replicas(redis: Redis, settings: ApiSettings) -> None:
    async with (
        serve(settings, redis, addjob_rate="2/minute") as one,
        serve(settings, redis, addjob_rate="2/minute") as two,
    ):
        codes = [(await add_job(replica(ALICE))).status_code for replica in (one, two, one)]
    assert codes == [200, 200, 429]


async def test_rate_limit_never_verifies_the_captcha_of_a_refused_request(
    redis: Redis, settings: ApiSettings, fake_hcaptcha: FakeHCaptcha
) -> None:
    async with serve(settings, redis, addjob_rate="1/minute") as at:
        assert (await add_job(at(ALICE))).status_code == 200
        before = len(fake_hcaptcha.calls)
        assert (await add_job(at(ALICE), captcha="good-2")).status_code == 429
    assert len(fake_hcaptcha.calls) == before


async def test_rate_limit_a_failed_captcha_still_counts(
    redis: Redis, settings: ApiSettings
) -> None:
    async with serve(settings, redis, addjob_rate="1/minute") as at:
        assert (await add_job(at(ALICE), captcha="wrong")).content == b'"captcha failed"\n'
        assert (await add_job(at(ALICE))).status_code == 429


async def test_rate_limit_does_not_count_requests_that_fail_validation(
    redis: Redis, settings: ApiSettings
) -> None:
    async with serve(settings, redis, addjob_rate="1/minute") as at:
        for _ in range(3):
            assert (await add_job(at(ALICE), number="99")).status_code == 400
        assert (await add_job(at(ALICE))).status_code == 200


async def test_rate_limit_never_limits_get_job_status(redis: Redis, settings: ApiSettings) -> None:
    async with serve(settings, redis, addjob_rate="1/minute", max_open_jobs_per_client=1) as at:
        alice = at(ALICE)
        token = (await add_job(alice)).json()
        assert (await add_job(alice)).status_code == 429
        codes = {
            (await alice.get("/getJobStatus", params={"token": token})).status_code
            for _ in range(120)
        }
    assert codes == {200}


async def test_rate_limit_several_limits_apply_together(
    redis: Redis, settings: ApiSettings
) -> None:
    async with serve(settings, redis, addjob_rate="5/minute;2/hour") as at:
        codes = [(await add_job(at(ALICE))).status_code for _ in range(3)]
    assert codes == [200, 200, 429]


async def test_open_jobs_cap_refuses_a_client_holding_its_cap(
    redis: Redis, settings: ApiSettings, fake_hcaptcha: FakeHCaptcha
) -> None:
    async with serve(settings, redis, max_open_jobs_per_client=2) as at:
        alice = at(ALICE)
        assert [(await add_job(alice)).status_code for _ in range(2)] == [200, 200]
        before = len(fake_hcaptcha.calls)
        refused = await add_job(alice)
        assert (refused.status_code, refused.content) == (429, b'"too many open jobs"\n')
        assert refused.headers["access-control-allow-origin"] == "*"
        assert len(fake_hcaptcha.calls) == before
        assert (await add_job(at(BOB))).status_code == 200


async def test_open_jobs_cap_frees_a_slot_when_a_job_completes(
    redis: Redis, settings: ApiSettings
) -> None:
    async with serve(settings, redis, max_open_jobs_per_client=1) as at:
        alice = at(ALICE)
        assert (await add_job(alice)).status_code == 200
        assert (await add_job(alice)).status_code == 429
        await finish_one(alice)
        assert (await add_job(alice)).status_code == 200


async def test_open_jobs_cap_a_failed_captcha_gives_its_slot_back(
    redis: Redis, settings: ApiSettings
) -> None:
    async with serve(settings, redis, max_open_jobs_per_client=1) as at:
        alice = at(ALICE)
        assert (await add_job(alice, captcha="wrong")).content == b'"captcha failed"\n'
        assert (await add_job(alice)).status_code == 200


async def test_open_jobs_cap_holds_for_concurrent_requests_without_spending_captchas(
    redis: Redis, settings: ApiSettings, fake_hcaptcha: FakeHCaptcha
) -> None:
    async with serve(settings, redis, max_open_jobs_per_client=3) as at:
        alice = at(ALICE)
        before = len(fake_hcaptcha.calls)
        replies = await asyncio.gather(*(add_job(alice) for _ in range(12)))
        verified = len(fake_hcaptcha.calls) - before
    codes = sorted(reply.status_code for reply in replies)
    assert codes == [200] * 3 + [429] * 9
    assert verified == 3


async def test_open_jobs_cap_counts_one_ipv6_network_as_one_client(
    redis: Redis, settings: ApiSettings
) -> None:
    async with serve(settings, redis, max_open_jobs_per_client=1) as at:
        assert (await add_job(at("2001:db8:1:2::10"))).status_code == 200
        assert (await add_job(at("2001:db8:1:2::99"))).status_code == 429
        assert (await add_job(at("2001:db8:1:3::10"))).status_code == 200


@pytest.mark.parametrize("limits", [{"addjob_rate": "5/minute"}, {"max_open_jobs_per_client": 3}])
async def test_rate_limit_with_redis_down_answers_storage_unavailable(
    settings: ApiSettings, fake_hcaptcha: FakeHCaptcha, limits: dict[str, Any]
) -> None:
    down = {"redis_url": SecretStr(f"redis://127.0.0.1:{free_port()}/0"), "redis_timeout_s": 0.5}
    before = len(fake_hcaptcha.calls)
    async with serve(settings, **down, **limits) as at:
        reply = await add_job(at(ALICE))
    assert (reply.status_code, reply.content) == (500, b'"storage unavailable"\n')
    assert reply.headers["access-control-allow-origin"] == "*"
    assert len(fake_hcaptcha.calls) == before


async def test_rate_limit_logs_carry_the_token_and_no_secret(
    redis: Redis, settings: ApiSettings, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO)
    async with serve(settings, redis, addjob_rate="3/minute", max_open_jobs_per_client=2) as at:
        alice = at(ALICE)
        token = (await add_job(alice)).json()
        await add_job(alice, captcha="wrong")
        await finish_one(alice)
    added = [r for r in caplog.records if r.getMessage() == "job added"]
    assert [getattr(r, "token", None) for r in added] == [token]
    ours = [r for r in caplog.records if r.name.split(".")[0] in {"api", "broker", "sdq"}]
    text = "\n".join(json.dumps(vars(r), default=str) for r in ours)
    assert BACKEND_SECRET not in text and HCAPTCHA_SECRET not in text


def test_rate_limit_setting_refuses_a_malformed_rate() -> None:
    with pytest.raises(ValueError, match="SDQ_ADDJOB_RATE"):
        ApiSettings(
            backend_secrets="s" * 32, insecure_skip_captcha=True, addjob_rate="ten a minute"
        )


async def test_rate_limit_holds_across_replicas_on_a_redis_cluster(
    settings: ApiSettings, redis_cluster: ClusterServers
) -> None:
    """On SDQ_REDIS_CLUSTER the limits count through the library's cluster storage."""
    cluster_settings = settings.model_copy(
        update={"redis_url": SecretStr(redis_cluster.url), "redis_cluster": True}
    )
    clients = [create_redis(cluster_settings) for _ in range(2)]
    try:
        async with (
            serve(cluster_settings, clients[0], addjob_rate="2/minute") as one,
            serve(cluster_settings, clients[1], addjob_rate="2/minute") as two,
        ):
            codes = [(await add_job(replica(ALICE))).status_code for replica in (one, two, one)]
    finally:
        for client in clients:
            await client.aclose()
    assert codes == [200, 200, 429]
