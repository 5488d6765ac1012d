"""The legacy byte shapes, as Go's encoding/json wrote them (api/legacy_format.py)."""

from __future__ import annotations

import json

import pytest

from api.legacy.format import (
    error_body,
    go_seconds,
    go_string,
    next_job_body,
    status_body,
    string_body,
)
from broker.job import JobSpec, StatusView
from broker.states import JobState

TOKEN = "45b825dd9eb2e9602749ac4b74b3d9d9"


def job_status(state: JobState, age_ms: int, queue_length: int) -> StatusView:
    created = 1_663_581_000_000
    return StatusView(TOKEN, state, created, created + age_ms, queue_length, 0, 0, 1, 768, 576)


def test_string_body_is_a_json_string_and_one_newline() -> None:
    assert string_body(TOKEN) == b'"45b825dd9eb2e9602749ac4b74b3d9d9"\n'


def test_error_body_joins_messages_with_comma_space() -> None:
    body = error_body(["number out of range", "invalid resolution", "missing captcha"])
    assert body == b'"number out of range, invalid resolution, missing captcha"\n'
    assert len(body) == 59  # the original's Content-Length for this answer


def test_error_body_of_one_message() -> None:
    assert error_body(["missing secret"]) == b'"missing secret"\n'


@pytest.mark.parametrize(
    ("text", "encoded"),
    [
        ("a<b>c&d", '"a\\u003cb\\u003ec\\u0026d"'),
        ("line\u2028para\u2029", '"line\\u2028para\\u2029"'),
        ('quote" back\\', '"quote\\" back\\\\"'),
        ("\x1c", '"\\u001c"'),
        ("\n\t", '"\\n\\t"'),
        ("\x7f", '"\x7f"'),
        ("hällo", '"hällo"'),
    ],
)
def test_go_string_escapes_like_go_encoding_json(text: str, encoded: str) -> None:
    assert go_string(text) == encoded
    assert json.loads(encoded) == text


@pytest.mark.parametrize(
    ("milliseconds", "seconds"),
    [
        (61_618, "61.618"),
        (2_000, "2"),
        (1, "0.001"),
        (0, "0"),
        (10, "0.01"),
        (1_001, "1.001"),
        (123_456_789, "123456.789"),
        (604_800_000, "604800"),
        (-250, "-0.25"),
    ],
)
def test_go_seconds_prints_milliseconds_as_go_prints_the_float(
    milliseconds: int, seconds: str
) -> None:
    assert go_seconds(milliseconds) == seconds


def test_status_body_keys_in_order_compact() -> None:
    body = status_body(job_status(JobState.NEW, 61_618, 46))
    assert body == (
        b'{"Token":"45b825dd9eb2e9602749ac4b74b3d9d9","State":"new","Age":61.618,"QueueLength":46}\n'
    )
    assert len(body) == 89  # the original's Content-Length for its example


@pytest.mark.parametrize("state", list(JobState))
def test_status_body_names_every_state(state: JobState) -> None:
    decoded = json.loads(status_body(job_status(state, 1_000, 0)))
    assert decoded == {"Token": TOKEN, "State": state.value, "Age": 1, "QueueLength": 0}


def test_next_job_body_keys_in_order_compact() -> None:
    body = next_job_body(JobSpec("375b681012543be32263ca5d3589b040", 1, 768, 576, "hello world"))
    assert body == (
        b'{"Token":"375b681012543be32263ca5d3589b040","Number":1,"Width":768,"Height":576,'
        b'"Prompt":"hello world"}\n'
    )
    assert len(body) == 104  # the original's Content-Length for its example


def test_next_job_body_escapes_the_prompt() -> None:
    body = next_job_body(JobSpec(TOKEN, 2, 576, 576, 'a "b" <c> & d'))
    assert body.endswith(b'"Prompt":"a \\"b\\" \\u003cc\\u003e \\u0026 d"}\n')
    assert json.loads(body)["Prompt"] == 'a "b" <c> & d'
