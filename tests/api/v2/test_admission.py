"""Admission and queue control as clients see them, through the real app: the cap on
open images, SDQ_MAX_WAIT_S (v2: 503 with Retry-After and the estimate; legacy: its
usual 400), Idempotency-Key on POST /v2/jobs, a paused queue, the fair order."""

from __future__ import annotations

import httpx
import pytest
from fastapi import FastAPI

from broker.admin import QueueAdmin
from broker.fair import Scheduling
from broker.queue import Queue
from tests.api.v2.conftest import MakeApp, report
from tests.conftest import BACKEND_SECRET

HEAVY, LIGHT = "203.0.113.7", "198.51.100.30"
JOB = {"prompt": "a cat", "number": 2, "resolution": "576x576", "captcha": "good-1"}


def at(app: FastAPI, peer: str) -> httpx.AsyncClient:
    transport = httpx.ASGITransport(app=app, client=(peer, 50000))
    return httpx.AsyncClient(transport=transport, base_url="http://sdq.test")


async def post(
    client: httpx.AsyncClient, key: str | None = None, **fields: object
) -> httpx.Response:
    headers = {} if key is None else {"Idempotency-Key": key}
    return await client.post("/v2/jobs", json={**JOB, **fields}, headers=headers)


async def test_admission_images_cap_refuses_with_429(make_app: MakeApp) -> None:
    app = await make_app(max_images_per_client=16)
    async with at(app, HEAVY) as client:
        assert (await post(client, number=16)).status_code == 201
        refused = await post(client, number=1)
        legacy = await client.get("/addJob", params={**JOB, "number": "1"})
    assert refused.status_code == 429
    assert refused.json() == {"errors": [{"field": None, "message": "too many open images"}]}
    assert (legacy.status_code, legacy.content) == (429, b'"too many open images"\n')


async def test_admission_max_wait_refuses_a_job_that_would_wait_too_long(
    make_app: MakeApp, queue: Queue
) -> None:
    await report(queue, "gpu-1", (576, 576, 1, 10_000))  # 10 s per image, one worker
    app = await make_app(max_wait_s=50)
    async with at(app, HEAVY) as client:
        for _ in range(3):  # 3 x 2 images ahead: 60 s
            assert (await post(client)).status_code == 201
        refused = await post(client)
        legacy = await client.get("/addJob", params={**JOB, "number": "2"})
    assert refused.status_code == 503
    assert refused.headers["retry-after"] == "10"  # 60 s ahead, 50 s allowed
    assert refused.json()["errors"][0]["message"] == "queue full: a new job would wait about 60 s"
    assert legacy.status_code == 400
    assert legacy.content == b'"queue full: about 60 s of work ahead, try later"\n'
    assert (await queue.counts())["new"] == 3


async def test_admission_max_wait_in_fair_mode_lets_a_light_client_in(
    make_app: MakeApp, queue: Queue
) -> None:
    await report(queue, "gpu-1", (576, 576, 1, 10_000))
    app = await make_app(max_wait_s=50, scheduling=Scheduling.FAIR)
    async with at(app, HEAVY) as heavy, at(app, LIGHT) as light:
        for _ in range(3):
            assert (await post(heavy)).status_code == 201
        assert (await post(heavy)).status_code == 503  # behind its own 60 s
        assert (await post(light)).status_code == 201  # starts after one job of the heavy


async def test_admission_idempotency_key_answers_the_first_job_again(
    make_app: MakeApp, queue: Queue
) -> None:
    app = await make_app()
    async with at(app, HEAVY) as client, at(app, LIGHT) as other:
        first = await post(client, key="order-42")
        again = await post(client, key="order-42", captcha="good-2")  # a retry: new captcha
        elsewhere = await post(other, key="order-42")  # another client's key
        changed = await post(client, key="order-42", prompt="a dog")
        bad = await post(client, key="")
    assert first.status_code == again.status_code == 201
    assert again.json()["token"] == first.json()["token"]
    assert again.headers["idempotent-replayed"] == "true"
    assert "idempotent-replayed" not in first.headers
    assert elsewhere.json()["token"] != first.json()["token"]
    assert changed.status_code == 422
    assert changed.json()["errors"][0]["field"] == "idempotency-key"
    assert bad.status_code == 400
    assert (await queue.counts())["new"] == 2


async def test_admission_a_replay_spends_no_captcha(make_app: MakeApp, queue: Queue) -> None:
    app = await make_app()
    async with at(app, HEAVY) as client:
        first = await post(client, key="k-1")
        again = await post(client, key="k-1", captcha="wrong")  # would fail: not asked
    assert again.status_code == 201
    assert again.json()["token"] == first.json()["token"]


async def test_admission_a_paused_queue_says_so_and_still_takes_jobs(
    make_app: MakeApp, queue: Queue
) -> None:
    await report(queue, "gpu-1", (576, 576, 1, 1_000))
    app = await make_app()
    await QueueAdmin(queue, "ops@host").pause()
    async with at(app, HEAVY) as client:
        token = (await post(client)).json()["token"]
        view = (await client.get(f"/v2/jobs/{token}")).json()
        overview = (await client.get("/v2/queue")).json()
        job = await client.get("/getNextJob", params={"secret": BACKEND_SECRET})
    assert view["queue_paused"] is True
    assert "paused" in view["notice"]
    assert overview["paused"] is True
    assert job.status_code == 404  # no job handed out while paused


@pytest.mark.parametrize("scheduling", list(Scheduling))
async def test_admission_legacy_queue_length_follows_the_scheduling(
    make_app: MakeApp, scheduling: Scheduling
) -> None:
    app = await make_app(scheduling=scheduling)
    async with at(app, HEAVY) as heavy, at(app, LIGHT) as light:
        for _ in range(3):
            assert (await post(heavy)).status_code == 201
        token = (await post(light)).json()["token"]
        status = (await light.get("/getJobStatus", params={"token": token})).json()
        view = (await light.get(f"/v2/jobs/{token}")).json()
    expected = 1 if scheduling is Scheduling.FAIR else 3  # behind one heavy job, or all
    assert status["QueueLength"] == view["position"] == expected
