"""JSON bodies as an attacker writes them: any text, lone surrogates (valid JSON, no
UTF-8), huge values, wrong types. Every answer is a clear 2xx/4xx in the surface's shape,
never a 500 (issue: a lone surrogate in `prompt` or `captcha` was a 500 and a traceback)."""

from __future__ import annotations

import json

import httpx
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tests.conftest import BACKEND_SECRET

# Letters, digits, punctuation, spaces, controls and lone surrogates (category Cs).
TEXT = st.text(st.characters(categories=["L", "N", "P", "Z", "Cc", "Cs"]), max_size=40)
VALUE = st.one_of(
    TEXT,
    st.integers(min_value=-(2**70), max_value=2**70),
    st.floats(allow_nan=False),
    st.booleans(),
    st.none(),
    st.lists(TEXT, max_size=3),
    st.builds(lambda n: "x" * n, st.sampled_from([501, 5_001, 70_000])),  # too long, too big
)
BODY = st.fixed_dictionaries(
    {},
    optional={
        "prompt": VALUE,
        "number": VALUE,
        "resolution": st.one_of(VALUE, st.sampled_from(["576x576", "768x576"])),
        "captcha": st.one_of(VALUE, st.just("good-fuzz")),
    },
)
FUZZ = settings(max_examples=60, deadline=None, suppress_health_check=list(HealthCheck))


def is_v2_error(reply: httpx.Response) -> bool:
    body = reply.json()
    return isinstance(body, dict) and all(
        set(error) == {"field", "message"} and isinstance(error["message"], str)
        for error in body["errors"]
    )


@FUZZ
@given(body=BODY)
async def test_fuzz_v2_job_bodies_get_an_answer_in_the_v2_shape(
    client: httpx.AsyncClient, body: dict[str, object]
) -> None:
    raw = json.dumps(body)  # ensure_ascii: a lone surrogate travels as \\udxxx
    reply = await client.post("/v2/jobs", content=raw, headers={"content-type": "application/json"})
    assert reply.status_code in (201, 400, 413, 422, 429), reply.text
    if reply.status_code == 413:  # FastAPI's own body limit, before any route
        assert reply.content == b"Content Too Large"
    elif reply.status_code != 201:
        assert is_v2_error(reply), reply.text


@FUZZ
@given(
    worker=VALUE,
    renders=st.lists(
        st.dictionaries(st.sampled_from(["width", "height", "images", "ms"]), VALUE), max_size=3
    ),
)
async def test_fuzz_worker_reports_get_a_clear_answer(
    client: httpx.AsyncClient, worker: object, renders: list[object]
) -> None:
    raw = json.dumps({"worker": worker, "renders": renders})
    reply = await client.post(
        "/backend/report",
        content=raw,
        headers={"content-type": "application/json", "authorization": f"Bearer {BACKEND_SECRET}"},
    )
    assert reply.status_code in (200, 400, 413), reply.text
    if reply.status_code == 400:
        assert isinstance(reply.json()["error"], str)
