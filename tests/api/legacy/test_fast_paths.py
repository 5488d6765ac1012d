"""The hot path's shortcuts give exactly the bytes of the general code they skip."""

from __future__ import annotations

import json

from hypothesis import given
from hypothesis import strategies as st

from api.legacy.format import _GO_ESCAPES, go_string
from api.legacy.query import _unescape, go_trim, parse_query


def reference_go_string(value: str) -> str:
    return json.dumps(value, ensure_ascii=False).translate(_GO_ESCAPES)


def reference_parse_query(raw: bytes) -> dict[str, str]:
    """parse_query with every pair unescaped, as before the shortcut."""
    params: dict[str, str] = {}
    for pair in raw.split(b"&"):
        if not pair or b";" in pair:
            continue
        key_raw, _, value_raw = pair.partition(b"=")
        key, value = _unescape(key_raw), _unescape(value_raw)
        if key is None or value is None or key in params:
            continue
        params[key] = go_trim(value)
    return params


@given(st.text())
def test_go_string_matches_the_encoder_for_any_text(value: str) -> None:
    assert go_string(value) == reference_go_string(value)


@given(st.text(alphabet=st.characters(min_codepoint=0, max_codepoint=0x7F)))
def test_go_string_matches_the_encoder_for_any_ascii(value: str) -> None:
    assert go_string(value) == reference_go_string(value)


def test_go_string_escapes_what_go_escapes() -> None:
    assert go_string('a<b>&"\\ c') == '"a\\u003cb\\u003e\\u0026\\"\\\\ c"'
    assert go_string("") == '""'
    assert go_string("45b825dd9eb2e9602749ac4b74b3d9d9") == '"45b825dd9eb2e9602749ac4b74b3d9d9"'


@given(st.binary(max_size=200))
def test_parse_query_matches_the_unescaping_reader_for_any_bytes(raw: bytes) -> None:
    assert parse_query(raw) == reference_parse_query(raw)


@given(st.lists(st.sampled_from([b"token", b"=", b"&", b";", b"%", b"+", b"a", b"\xc3\xa9", b" "])))
def test_parse_query_matches_the_unescaping_reader_for_query_like_bytes(parts: list[bytes]) -> None:
    raw = b"".join(parts)
    assert parse_query(raw) == reference_parse_query(raw)
