"""/backend/lease, /backend/release, /backend/report: our HTTP workers' extensions."""

from __future__ import annotations

import httpx
import pytest

from broker.queue import Queue
from broker.states import JobState
from tests.conftest import BACKEND_SECRET

TOKEN = "45b825dd9eb2e9602749ac4b74b3d9d9"
BEARER = {"Authorization": f"Bearer {BACKEND_SECRET}"}


async def claimed(client: httpx.AsyncClient, queue: Queue) -> int:
    """A job set pending over the legacy protocol; returns its attempt header."""
    await queue.add_job(TOKEN, "extended", 2, 576, 576)
    reply = await client.get(
        "/setJobStatus", params={"token": TOKEN, "state": "pending"}, headers=BEARER
    )
    assert reply.content == b'"ok"\n'
    return int(reply.headers["x-sdq-fence"])


async def test_backend_lease_extends_the_claim_and_records_progress(
    client: httpx.AsyncClient, queue: Queue
) -> None:
    attempt = await claimed(client, queue)
    params = {"token": TOKEN, "fence": attempt, "lease_ms": 90_000, "progress": 1}
    reply = await client.post("/backend/lease", params=params, headers=BEARER)
    assert reply.status_code == 200
    body = reply.json()
    assert (body["token"], body["fence"]) == (TOKEN, attempt)
    status = await queue.status(TOKEN)
    assert status.progress == 1
    assert body["lease_until_ms"] - status.now_ms > 80_000


async def test_backend_release_gives_the_job_back_with_its_attempt_counted(
    client: httpx.AsyncClient, queue: Queue
) -> None:
    attempt = await claimed(client, queue)
    params = {
        "token": TOKEN,
        "fence": attempt,
        "reason": "CUDA out of memory",
        "secret": BACKEND_SECRET,
    }
    reply = await client.post("/backend/release", params=params)
    assert (reply.status_code, reply.json()["state"]) == (200, "new")
    status = await queue.status(TOKEN)
    assert (status.state, status.attempts) == (JobState.NEW, 1)


async def test_backend_calls_are_fenced_by_attempt(client: httpx.AsyncClient, queue: Queue) -> None:
    attempt = await claimed(client, queue)
    params = {"token": TOKEN, "fence": attempt + 1}
    for path in ("/backend/lease", "/backend/release"):
        reply = await client.post(path, params=params, headers=BEARER)
        assert (reply.status_code, reply.json()) == (409, {"error": "stale claim"})
    assert (await queue.status(TOKEN)).attempts == 0


@pytest.mark.parametrize(
    ("headers", "status", "error"),
    [
        ({}, 401, "missing secret"),
        ({"Authorization": "Bearer nope"}, 401, "wrong secret"),
    ],
)
async def test_backend_calls_need_the_backend_secret(
    client: httpx.AsyncClient, headers: dict[str, str], status: int, error: str
) -> None:
    reply = await client.post(
        "/backend/lease", params={"token": TOKEN, "fence": 1}, headers=headers
    )
    assert (reply.status_code, reply.json()) == (status, {"error": error})


@pytest.mark.parametrize(
    ("params", "status", "error"),
    [
        ({"token": "x", "fence": 1}, 400, "token must be 32 lower-case hex characters"),
        ({"token": TOKEN}, 400, "fence must be an integer from 1 to 1000000000000000"),
        (
            {"token": TOKEN, "fence": 1, "lease_ms": 5},
            400,
            "lease_ms must be an integer from 1000 to 3600000",
        ),
        ({"token": TOKEN, "fence": 1}, 404, "token not found"),
    ],
)
async def test_backend_lease_answers_bad_input_with_a_clear_error(
    client: httpx.AsyncClient, params: dict[str, object], status: int, error: str
) -> None:
    reply = await client.post("/backend/lease", params=params, headers=BEARER)
    assert (reply.status_code, reply.json()) == (status, {"error": error})


async def test_backend_lease_of_a_job_that_is_not_pending_is_a_conflict(
    client: httpx.AsyncClient, queue: Queue
) -> None:
    await queue.add_job(TOKEN, "still new", 1, 576, 576)
    reply = await client.post("/backend/lease", params={"token": TOKEN, "fence": 1}, headers=BEARER)
    assert (reply.status_code, reply.json()) == (409, {"error": "job is not pending"})


async def test_backend_report_records_render_times_and_liveness(
    client: httpx.AsyncClient, queue: Queue
) -> None:
    body = {"worker": "gpu-7", "renders": [{"width": 1024, "height": 576, "images": 4, "ms": 6000}]}
    reply = await client.post("/backend/report", json=body, headers=BEARER)
    assert reply.status_code == 200 and reply.json()["now_ms"] > 0
    render_ms = await queue.redis.hgetall(queue.keys.render_ms)
    assert (render_ms["1024x576:images"], render_ms["1024x576:ms"]) == ("4", "6000")
    assert await queue.redis.zscore(queue.keys.workers, "gpu-7") is not None


@pytest.mark.parametrize(
    "body",
    [
        [],
        {"renders": []},
        {"worker": "w", "renders": [{"width": 576, "height": 576, "images": 0, "ms": 5}]},
        {"worker": "w", "renders": [{"width": 576, "height": 576, "images": "1", "ms": 5}]},
    ],
)
async def test_backend_report_refuses_a_malformed_body(
    client: httpx.AsyncClient, body: object
) -> None:
    reply = await client.post("/backend/report", json=body, headers=BEARER)
    assert reply.status_code == 400 and "error" in reply.json()


async def test_backend_extensions_leave_the_legacy_answers_unchanged(
    client: httpx.AsyncClient, queue: Queue
) -> None:
    await queue.add_job(TOKEN, "legacy", 1, 576, 576)
    reply = await client.get("/getNextJob", params={"secret": BACKEND_SECRET})
    assert reply.content == (
        b'{"Token":"45b825dd9eb2e9602749ac4b74b3d9d9","Number":1,"Width":576,'
        b'"Height":576,"Prompt":"legacy"}\n'
    )
