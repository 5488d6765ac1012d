"""/setJobStatus through the real app, on fakeredis and on a real engine."""

from __future__ import annotations

import httpx
import pytest

from tests.conftest import BACKEND_SECRET, ROTATED_SECRET

VALID = {"prompt": "hello world", "number": "1", "resolution": "768x576", "captcha": "good-1"}
UNKNOWN = "45b825dd9eb2e9602749ac4b74b3d9d9"


async def add_job(client: httpx.AsyncClient) -> str:
    reply = await client.get("/addJob", params=VALID)
    assert reply.status_code == 200, reply.content
    token = reply.json()
    assert isinstance(token, str)
    return token


async def set_state(
    client: httpx.AsyncClient, token: str, state: str, secret: str = BACKEND_SECRET
) -> httpx.Response:
    return await client.get(
        "/setJobStatus", params={"token": token, "state": state, "secret": secret}
    )


async def job_state(client: httpx.AsyncClient, token: str) -> str:
    state = (await client.get("/getJobStatus", params={"token": token})).json()["State"]
    assert isinstance(state, str)
    return state


def assert_reply(reply: httpx.Response, status_code: int, body: str) -> None:
    sent = reply.request.url.query[:120]
    assert (reply.status_code, reply.content) == (status_code, f'"{body}"\n'.encode()), sent


async def test_set_job_status_new_to_pending_to_complete(client: httpx.AsyncClient) -> None:
    token = await add_job(client)
    reply = await set_state(client, token, "pending")
    assert_reply(reply, 200, "ok")
    assert reply.headers["content-length"] == "5"
    assert await job_state(client, token) == "pending"
    assert_reply(await set_state(client, token, "complete", ROTATED_SECRET), 200, "ok")
    assert await job_state(client, token) == "complete"


async def test_set_job_status_matches_the_original_failure_example(
    client: httpx.AsyncClient,
) -> None:
    reply = await client.get("/setJobStatus?token=123&state=pending")
    assert_reply(reply, 400, "wrong size for token, missing secret")
    assert reply.headers["content-length"] == "39"


async def test_set_job_status_parameter_errors_collected_in_order(
    client: httpx.AsyncClient,
) -> None:
    for query, body in [
        ("", "missing token, missing secret, missing state"),
        ("token=123", "wrong size for token, missing secret, missing state"),
        ("token=123&secret=x&state=new", "wrong size for token, invalid value for state"),
        (f"token={UNKNOWN}&state=done", "missing secret, invalid value for state"),
        (f"token={UNKNOWN}&secret=x", "missing state"),
        (f"secret={BACKEND_SECRET}&state=pending", "missing token"),
        ("token=%C3%A9&secret=+&state=+", "wrong size for token, missing secret, missing state"),
        (f"token={UNKNOWN}&secret=wrong&state=Pending", "invalid value for state"),
        (f"token={UNKNOWN}&secret=wrong&state=failed", "invalid value for state"),
    ]:
        assert_reply(await client.get(f"/setJobStatus?{query}"), 400, body)


async def test_set_job_status_parameter_errors_come_before_the_secret_check(
    client: httpx.AsyncClient,
) -> None:
    reply = await client.get("/setJobStatus?token=123&secret=wrong&state=pending")
    assert_reply(reply, 400, "wrong size for token")


async def test_set_job_status_wrong_secret_before_token_not_found(
    client: httpx.AsyncClient,
) -> None:
    assert_reply(await set_state(client, UNKNOWN, "pending", "wrong"), 400, "wrong secret")
    assert_reply(await set_state(client, "é" * 16, "pending", "wrong"), 400, "wrong secret")


async def test_set_job_status_wrong_secret_changes_nothing(client: httpx.AsyncClient) -> None:
    token = await add_job(client)
    assert_reply(await set_state(client, token, "pending", "wrong"), 400, "wrong secret")
    assert await job_state(client, token) == "new"


async def test_set_job_status_token_not_found(client: httpx.AsyncClient) -> None:
    for token in [UNKNOWN, "é" * 16, UNKNOWN.upper()]:
        assert_reply(await set_state(client, token, "pending"), 404, "token not found")


async def test_set_job_status_accepts_a_bearer_secret(client: httpx.AsyncClient) -> None:
    token = await add_job(client)
    reply = await client.get(
        "/setJobStatus",
        params={"token": token, "state": "pending"},
        headers={"Authorization": f"Bearer {BACKEND_SECRET}"},
    )
    assert_reply(reply, 200, "ok")


async def test_set_job_status_trims_every_parameter(client: httpx.AsyncClient) -> None:
    token = await add_job(client)
    reply = await client.get(
        "/setJobStatus",
        params={
            "token": f" {token}\n",
            "state": "\tpending\u3000",
            "secret": f"\xa0{BACKEND_SECRET}",
        },
    )
    assert_reply(reply, 200, "ok")


@pytest.mark.parametrize(
    ("path", "target"),
    [
        ([], "complete"),  # new -> complete
        (["pending"], "pending"),  # pending -> pending
        (["pending", "complete"], "pending"),  # complete -> pending
        (["pending", "complete"], "complete"),  # complete -> complete
    ],
)
async def test_set_job_status_refuses_every_other_transition(
    client: httpx.AsyncClient, path: list[str], target: str
) -> None:
    token = await add_job(client)
    for state in path:
        assert_reply(await set_state(client, token, state), 200, "ok")
    before = await job_state(client, token)
    assert_reply(await set_state(client, token, target), 400, "invalid state transition")
    assert await job_state(client, token) == before


async def test_set_job_status_attempt_extension_fences_a_stale_claim(
    client: httpx.AsyncClient,
) -> None:
    token = await add_job(client)
    claim = (await set_state(client, token, "pending")).headers["x-sdq-fence"]
    params = {"token": token, "state": "complete", "secret": BACKEND_SECRET}
    stale = await client.get("/setJobStatus", params={**params, "fence": str(int(claim) + 1)})
    assert_reply(stale, 409, "stale claim")
    assert_reply(await client.get("/setJobStatus", params={**params, "fence": claim}), 200, "ok")


async def test_set_job_status_attempt_is_read_as_ascii_digits_only(
    client: httpx.AsyncClient,
) -> None:
    token = await add_job(client)
    assert (await set_state(client, token, "pending")).headers["x-sdq-fence"] == "1"
    params = {"token": token, "state": "complete", "secret": BACKEND_SECRET, "fence": "٢"}
    assert_reply(await client.get("/setJobStatus", params=params), 200, "ok")  # not attempt 2
