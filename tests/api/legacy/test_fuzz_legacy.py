"""Property: whatever query string arrives, the four legacy paths answer a JSON string or
object ending in one newline, with their headers, and never a 500.

Two ways in: through httpx (any unicode, escaped as a browser would), and straight into
the ASGI app with raw query bytes a client library would refuse to send (control
characters, bare '%', invalid UTF-8), as a server hands them over."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from dataclasses import dataclass
from urllib.parse import quote, quote_from_bytes, urlencode

import httpx
import pytest
from hypothesis import HealthCheck, assume, given, settings
from hypothesis import strategies as st
from redis.asyncio import Redis
from starlette.types import ASGIApp, Message

from api.app import create_app
from api.settings import ApiSettings
from tests.conftest import BACKEND_SECRET

PATHS = ["/addJob", "/getJobStatus", "/getNextJob", "/setJobStatus"]
FRONTEND = {"/addJob", "/getJobStatus"}
NAMES = ["prompt", "number", "resolution", "captcha", "token", "secret", "state", "fence"]
INTERESTING = [
    BACKEND_SECRET,
    "pending",
    "complete",
    "768x576",
    "good-1",
    "5",
    "-1",
    "9223372036854775807",
    "0" * 32,
    "é" * 16,
    "\x1c",
    "\u3000",
    "%",
    "%zz",
    "+",
    ";",
    "=",
    "&",
]
MAX_URL = 60_000
# "slow" would make the fake hCaptcha hold each example for the 1 s timeout.
SLOW_CAPTCHA = "slow"

# hypothesis reuses one app across examples: state piles up, and nothing asserts on it.
FUZZ = settings(
    max_examples=80,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)

values = st.one_of(
    st.sampled_from(INTERESTING),
    st.text(max_size=40).filter(lambda text: text != SLOW_CAPTCHA),
    st.text(max_size=600),
    st.integers().map(str),
    st.from_regex(r"[0-9+\-_xeE. ]{0,24}", fullmatch=True),
)
names = st.one_of(st.sampled_from(NAMES), st.text(max_size=8))
# At most one huge value per request (past every byte limit and Python's 4300-digit
# int limit), from characters whose repr is short: hypothesis warns on huge reprs.
huge = st.builds(
    lambda name, char, count: (name, char * count),
    st.sampled_from(["number", "number", *NAMES]),
    st.sampled_from(["9", "9", "0", "a", "é", " ", "%", "\u3000", "🙂"]),
    st.integers(400, 6_000),
)
pairs = st.builds(
    lambda small, big: small + big,
    st.lists(st.tuples(names, values), max_size=6),
    st.lists(huge, max_size=1),
)


def _escaped_pair(key: str, value: str, plus: bool) -> bytes:
    escape = (lambda text: quote(text, safe="").replace("%20", "+")) if plus else quote
    return f"{escape(key)}={escape(value)}".encode()


raw_queries = st.one_of(
    st.binary(max_size=300),
    st.builds(
        lambda items, plus: b"&".join(_escaped_pair(k, v, plus) for k, v in items),
        pairs,
        st.booleans(),
    ),
    st.lists(
        st.tuples(st.sampled_from(NAMES), st.binary(max_size=60).map(quote_from_bytes)),
        max_size=8,
    ).map(lambda items: "&".join(f"{k}={v}" for k, v in items).encode()),
    st.text(alphabet="%+&=;abcF0 \x00\x1c\x7f\xff", max_size=60).map(
        lambda text: text.encode("latin-1")
    ),
)


@dataclass
class Answer:
    status: int
    headers: dict[str, str]
    body: bytes


@dataclass
class Target:
    app: ASGIApp
    client: httpx.AsyncClient


@pytest.fixture
async def target(redis: Redis, settings: ApiSettings) -> AsyncIterator[Target]:
    app = create_app(settings, redis=redis)
    async with app.router.lifespan_context(app):
        transport = httpx.ASGITransport(app=app, client=("203.0.113.7", 50000))
        async with httpx.AsyncClient(transport=transport, base_url="http://sdq.test") as http:
            yield Target(app, http)


async def call_raw(app: ASGIApp, method: str, path: str, query: bytes) -> Answer:
    """One request as an ASGI server would hand it over, raw query bytes and all."""
    scope = {
        "type": "http",
        "asgi": {"version": "3.0"},
        "http_version": "1.1",
        "method": method,
        "scheme": "http",
        "path": path,
        "raw_path": path.encode(),
        "query_string": query,
        "root_path": "",
        "headers": [(b"host", b"sdq.test")],
        "client": ("203.0.113.7", 50000),
        "server": ("sdq.test", 80),
    }
    sent: list[Message] = []

    async def receive() -> Message:
        return {"type": "http.request", "body": b"", "more_body": False}

    async def send(message: Message) -> None:
        sent.append(message)

    await app(scope, receive, send)
    start, body = sent[0], b"".join(m.get("body", b"") for m in sent[1:])
    headers = {k.decode("latin-1"): v.decode("latin-1") for k, v in start["headers"]}
    return Answer(start["status"], headers, body)


def assert_legacy_answer(path: str, answer: Answer) -> None:
    assert answer.status < 500, answer.body
    assert answer.headers["content-type"] == "application/json"
    assert answer.body.endswith(b"\n") and not answer.body.endswith(b"\n\n")
    assert isinstance(json.loads(answer.body), str | dict)
    assert ("access-control-allow-origin" in answer.headers) == (path in FRONTEND)


@FUZZ
@given(path=st.sampled_from(PATHS), params=pairs)
async def test_fuzz_legacy_any_parameters_through_http(
    target: Target, path: str, params: list[tuple[str, str]]
) -> None:
    assume(("captcha", SLOW_CAPTCHA) not in params)
    assume(len(urlencode(params)) < MAX_URL)  # httpx refuses longer URLs itself
    reply = await target.client.get(path, params=tuple(params))
    assert_legacy_answer(path, Answer(reply.status_code, dict(reply.headers), reply.content))


@FUZZ
@given(
    path=st.sampled_from(PATHS),
    method=st.sampled_from(["GET", "POST", "HEAD"]),
    query=raw_queries,
)
async def test_fuzz_legacy_any_raw_query_bytes(
    target: Target, path: str, method: str, query: bytes
) -> None:
    assume(b"captcha=slow" not in query)
    assert_legacy_answer(path, await call_raw(target.app, method, path, query))


@FUZZ
@given(
    path=st.sampled_from(PATHS),
    authorization=st.text(alphabet=st.characters(max_codepoint=255), max_size=80),
)
async def test_fuzz_legacy_any_authorization_header(
    target: Target, path: str, authorization: str
) -> None:
    headers = [(b"authorization", authorization.encode("latin-1"))]
    reply = await target.client.get(path, headers=headers)
    assert_legacy_answer(path, Answer(reply.status_code, dict(reply.headers), reply.content))
