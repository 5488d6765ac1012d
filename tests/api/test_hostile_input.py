"""Requests written as an attacker would write them: each once made a 500 and a long
traceback, or leaked internals. Now each gets a clear answer and one log line at most."""

from __future__ import annotations

import logging

import httpx
import pytest

from api.errors import throttled
from broker.queue import Queue
from tests.conftest import BACKEND_SECRET

TOKEN = "45b825dd9eb2e9602749ac4b74b3d9d9"
BEARER = {"Authorization": f"Bearer {BACKEND_SECRET}"}
INTERNAL = {"errors": [{"field": None, "message": "internal error"}]}


def no_traceback(caplog: pytest.LogCaptureFixture) -> None:
    assert all(record.exc_info is None for record in caplog.records)
    assert all("\n" not in record.getMessage() for record in caplog.records)


@pytest.mark.parametrize("field", ["prompt", "captcha", "resolution", "number"])
async def test_a_lone_surrogate_in_a_v2_body_is_a_422_not_a_500(
    client: httpx.AsyncClient, caplog: pytest.LogCaptureFixture, field: str
) -> None:
    fields = {"prompt": '"a"', "number": "1", "resolution": '"576x576"', "captcha": '"good"'}
    fields[field] = '"\\ud800"'  # valid JSON, but no UTF-8 text
    raw = "{" + ", ".join(f'"{name}": {value}' for name, value in fields.items()) + "}"
    reply = await client.post("/v2/jobs", content=raw, headers={"content-type": "application/json"})
    assert reply.status_code == 422
    assert reply.json() == {
        "errors": [{"field": field, "message": "must be valid UTF-8 text (no lone surrogates)"}]
    }
    no_traceback(caplog)


async def test_undecodable_bytes_in_a_release_reason_are_a_400(
    client: httpx.AsyncClient, queue: Queue, caplog: pytest.LogCaptureFixture
) -> None:
    await queue.add_job(TOKEN, "p", 1, 576, 576)
    claim = await client.get(
        "/setJobStatus", params={"token": TOKEN, "state": "pending"}, headers=BEARER
    )
    fence = claim.headers["x-sdq-fence"]
    reply = await client.post(
        f"/backend/release?token={TOKEN}&fence={fence}&reason=%FF%FE", headers=BEARER
    )
    assert (reply.status_code, reply.json()) == (400, {"error": "reason must be UTF-8 text"})
    no_traceback(caplog)


async def test_a_lone_surrogate_as_worker_name_is_a_400(
    client: httpx.AsyncClient, caplog: pytest.LogCaptureFixture
) -> None:
    reply = await client.post(
        "/backend/report",
        content=b'{"worker": "\\udcff", "renders": []}',
        headers={**BEARER, "content-type": "application/json"},
    )
    assert reply.status_code == 400
    assert "worker must be" in reply.json()["error"]
    no_traceback(caplog)


async def test_an_unexpected_error_is_a_plain_500_and_one_log_line_per_interval(
    client: httpx.AsyncClient,
    queue: Queue,
    caplog: pytest.LogCaptureFixture,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """A bug (here: a broker call that raises what no table maps) must not show its text
    to the client, nor write a traceback per request to the log."""

    async def broken(*args: object, **kwargs: object) -> None:
        raise RuntimeError("secret internals\nFORGED 200 OK line")

    throttled.forget()
    monkeypatch.setattr(Queue, "job_details", broken)
    monkeypatch.setattr(Queue, "status", broken)
    for _ in range(20):
        v2 = await client.get(f"/v2/jobs/{TOKEN}")
        assert (v2.status_code, v2.json()) == (500, INTERNAL)
        legacy = await client.get(f"/getJobStatus?token={TOKEN}")
        assert (legacy.status_code, legacy.content) == (500, b'"internal error"\n')
    errors = [r for r in caplog.records if r.levelno >= logging.ERROR]
    assert len(errors) == 2  # one per place, not one per request
    assert all("RuntimeError" in r.getMessage() for r in errors)
    no_traceback(caplog)


async def test_v2_errors_of_the_framework_take_the_v2_shape(client: httpx.AsyncClient) -> None:
    missing = await client.get("/v2/no-such-thing")
    assert (missing.status_code, missing.json()) == (
        404,
        {"errors": [{"field": None, "message": "not found"}]},
    )
    wrong = await client.put(f"/v2/jobs/{TOKEN}")
    assert wrong.status_code == 405
    assert wrong.json() == {"errors": [{"field": None, "message": "method not allowed"}]}
    assert "GET" in wrong.headers["allow"]


@pytest.mark.parametrize("path", ["/healthz", "/readyz"])
async def test_probes_answer_head(client: httpx.AsyncClient, path: str) -> None:
    reply = await client.head(path)
    assert (reply.status_code, reply.content) == (200, b"")
