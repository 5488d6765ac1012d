"""Headers, methods and query decoding shared by the four legacy paths."""

from __future__ import annotations

import json

import httpx
import pytest

from tests.conftest import BACKEND_SECRET

ADD = "prompt=hello%20world&number=1&resolution=768x576&captcha=good-1"
UNKNOWN = "45b825dd9eb2e9602749ac4b74b3d9d9"
FRONTEND = ["/addJob", "/getJobStatus"]
BACKEND = ["/getNextJob", "/setJobStatus"]

# (path, query, status) covering success, 400 and 404 on every path; "{token}" is a real job.
CASES = [
    ("/addJob", ADD, 200),
    ("/addJob", "", 400),
    ("/addJob", ADD.replace("good-1", "bad"), 400),
    ("/getJobStatus", "token={token}", 200),
    ("/getJobStatus", "", 400),
    ("/getJobStatus", f"token={UNKNOWN}", 404),
    ("/getNextJob", f"secret={BACKEND_SECRET}", 200),
    ("/getNextJob", "secret=wrong", 400),
    ("/setJobStatus", f"token={{token}}&state=pending&secret={BACKEND_SECRET}", 200),
    ("/setJobStatus", "token=1", 400),
    ("/setJobStatus", f"token={UNKNOWN}&state=pending&secret={BACKEND_SECRET}", 404),
]


async def add_job(client: httpx.AsyncClient, query: str = ADD) -> str:
    reply = await client.get(f"/addJob?{query}")
    assert reply.status_code == 200, reply.content
    token = reply.json()
    assert isinstance(token, str)
    return token


async def stored_job(client: httpx.AsyncClient) -> dict[str, object]:
    reply = await client.get("/getNextJob", params={"secret": BACKEND_SECRET})
    assert reply.status_code == 200, reply.content
    job = reply.json()
    assert isinstance(job, dict)
    return job


def assert_legacy_body(reply: httpx.Response) -> None:
    assert reply.headers["content-type"] == "application/json"
    assert reply.content.endswith(b"\n") and not reply.content.endswith(b"\n\n")
    assert isinstance(json.loads(reply.content), str | dict)


@pytest.mark.parametrize(("path", "query", "status"), CASES)
async def test_legacy_get_head_and_post_answer_json_with_cors_on_frontend_paths_only(
    client: httpx.AsyncClient, path: str, query: str, status: int
) -> None:
    for method in ("GET", "POST", "HEAD"):
        token = await add_job(client)
        reply = await client.request(method, f"{path}?{query.format(token=token)}")
        assert reply.status_code == status, (method, reply.content)
        assert reply.headers["content-type"] == "application/json"
        if method != "HEAD":
            assert_legacy_body(reply)
            assert reply.headers["content-length"] == str(len(reply.content))
        if path in FRONTEND:
            assert reply.headers.get_list("access-control-allow-origin") == ["*"]
        else:
            assert "access-control-allow-origin" not in reply.headers


@pytest.mark.parametrize("path", FRONTEND)
async def test_legacy_preflight_on_frontend_paths_succeeds(
    client: httpx.AsyncClient, path: str
) -> None:
    reply = await client.options(
        path,
        headers={
            "Origin": "https://demo.example",
            "Access-Control-Request-Method": "GET",
            "Access-Control-Request-Headers": "x-requested-with",
        },
    )
    assert reply.status_code == 200
    assert reply.headers["access-control-allow-origin"] == "*"
    assert "GET" in reply.headers["access-control-allow-methods"]
    assert reply.headers["access-control-allow-headers"] == "x-requested-with"


@pytest.mark.parametrize("path", BACKEND)
async def test_legacy_options_on_backend_paths_sends_no_cors(
    client: httpx.AsyncClient, path: str
) -> None:
    reply = await client.options(path, headers={"Origin": "https://demo.example"})
    assert reply.status_code < 500
    assert "access-control-allow-origin" not in reply.headers


async def test_legacy_preflight_creates_no_job(client: httpx.AsyncClient) -> None:
    await client.options(f"/addJob?{ADD}")
    reply = await client.get("/getNextJob", params={"secret": BACKEND_SECRET})
    assert reply.status_code == 404


async def test_legacy_head_and_post_add_jobs_like_get(client: httpx.AsyncClient) -> None:
    assert (await client.head(f"/addJob?{ADD}")).status_code == 200
    posted = (await client.post(f"/addJob?{ADD}")).json()
    first, second = await stored_job(client), await stored_job(client)
    assert second["Token"] == posted
    assert first["Prompt"] == second["Prompt"] == "hello world"


async def test_legacy_post_reads_parameters_from_the_query_string_only(
    client: httpx.AsyncClient,
) -> None:
    reply = await client.post("/getNextJob", data={"secret": BACKEND_SECRET})
    assert reply.content == b'"missing secret"\n'


async def test_legacy_plus_and_percent_20_are_spaces(client: httpx.AsyncClient) -> None:
    for prompt in ["hello+world", "hello%20world", "hello world"]:
        await add_job(client, ADD.replace("hello%20world", prompt))
        assert (await stored_job(client))["Prompt"] == "hello world"


async def test_legacy_escaped_plus_is_a_plus(client: httpx.AsyncClient) -> None:
    await add_job(client, ADD.replace("hello%20world", "1%2B1"))
    assert (await stored_job(client))["Prompt"] == "1+1"


async def test_legacy_repeated_parameter_uses_its_first_value(client: httpx.AsyncClient) -> None:
    await add_job(client, f"number=3&{ADD}&number=5&prompt=other")
    job = await stored_job(client)
    assert (job["Number"], job["Prompt"]) == (3, "hello world")


async def test_legacy_pair_with_a_bad_escape_is_ignored(client: httpx.AsyncClient) -> None:
    reply = await client.get(f"/addJob?{ADD.replace('number=1', 'number=%zz1')}")
    assert reply.content == b'"missing number"\n'
    reply = await client.get(f"/addJob?{ADD.replace('number=1', 'number=1%')}")
    assert reply.content == b'"missing number"\n'


async def test_legacy_pair_with_a_semicolon_is_ignored(client: httpx.AsyncClient) -> None:
    reply = await client.get(f"/addJob?{ADD.replace('number=1', 'number=1;x=2')}")
    assert reply.content == b'"missing number"\n'


async def test_legacy_unicode_white_space_is_trimmed(client: httpx.AsyncClient) -> None:
    # U+3000, U+00A0, U+2028, tab, newline, CR, '+', VT, U+0085
    for space in ["%E3%80%80", "%C2%A0", "%E2%80%A8", "%09", "%0A", "%0D", "+", "%0B", "%C2%85"]:
        query = (
            f"prompt={space}hello{space}&number={space}2{space}"
            f"&resolution={space}576x576{space}&captcha={space}good-1{space}"
        )
        await add_job(client, query)
        job = await stored_job(client)
        assert (job["Prompt"], job["Number"], job["Width"]) == ("hello", 2, 576), space


async def test_legacy_information_separators_are_not_trimmed(client: httpx.AsyncClient) -> None:
    for control in ["%1C", "%1D", "%1E", "%1F"]:
        reply = await client.get(f"/addJob?{ADD.replace('hello%20world', control + 'hello')}")
        assert reply.status_code == 400
        assert reply.json() == (
            "prompt contains a non-printable ASCII character (after transliteration of DE/IT)"
        )
        reply = await client.get(f"/addJob?{ADD.replace('number=1', f'number={control}1')}")
        assert reply.json() == "cannot parse number"


async def test_legacy_inner_tabs_are_kept_and_refused(client: httpx.AsyncClient) -> None:
    reply = await client.get(f"/addJob?{ADD.replace('hello%20world', 'hello%09world')}")
    assert reply.status_code == 400


async def test_legacy_paths_are_documented_in_openapi(client: httpx.AsyncClient) -> None:
    paths = (await client.get("/openapi.json")).json()["paths"]
    assert {"/addJob", "/getJobStatus", "/getNextJob", "/setJobStatus"} <= set(paths)
