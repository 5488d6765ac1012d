"""Query-string reading as Go's net/url + strings.TrimSpace did it (api/query.py)."""

from __future__ import annotations

import pytest

from api.legacy.query import byte_length, go_trim, parse_query

# Every character with the Unicode White_Space property (Go's unicode.IsSpace).
WHITE_SPACE = (
    "\t\n\v\f\r \x85\xa0\u1680\u2000\u2001\u2002\u2003\u2004\u2005\u2006"
    "\u2007\u2008\u2009\u200a\u2028\u2029\u202f\u205f\u3000"
)
SEPARATORS = "\x1c\x1d\x1e\x1f"  # str.isspace() says yes, White_Space says no


def test_white_space_is_what_python_calls_space_less_the_information_separators() -> None:
    python_space = {chr(code) for code in range(0x10000) if chr(code).isspace()}
    assert python_space - set(SEPARATORS) == set(WHITE_SPACE)


def test_go_trim_strips_nothing_else_in_the_basic_multilingual_plane() -> None:
    kept = [chr(code) for code in range(0x10000) if chr(code) not in WHITE_SPACE]
    assert [char for char in kept if go_trim(char) != char] == []


@pytest.mark.parametrize("space", list(WHITE_SPACE))
def test_go_trim_strips_every_unicode_white_space(space: str) -> None:
    assert go_trim(f"{space}{space}hello world{space}") == "hello world"


@pytest.mark.parametrize("control", ["\x1c", "\x1d", "\x1e", "\x1f"])
def test_go_trim_keeps_information_separators_that_str_strip_would_eat(control: str) -> None:
    assert go_trim(f"{control}hello{control}") == f"{control}hello{control}"
    assert f"{control}hello".strip() == "hello"  # the trap the contract warns about


@pytest.mark.parametrize("other", ["\x00", "\u200b", "\ufeff", "\u180e", "\x7f"])
def test_go_trim_keeps_characters_that_are_not_white_space(other: str) -> None:
    assert go_trim(f"{other}x{other}") == f"{other}x{other}"


def test_go_trim_keeps_inner_white_space() -> None:
    assert go_trim("  a \t b  ") == "a \t b"


def test_byte_length_counts_utf8_bytes_not_characters() -> None:
    assert byte_length("abc") == 3
    assert byte_length("é" * 16) == 32
    assert byte_length("日本") == 6
    assert byte_length("🙂") == 4


def test_byte_length_counts_each_undecodable_input_byte_once() -> None:
    assert byte_length(parse_query(b"t=%FF%FEa")["t"]) == 3


def test_parse_query_decodes_plus_and_percent_20_as_space() -> None:
    assert parse_query(b"prompt=hello+big%20world") == {"prompt": "hello big world"}


def test_parse_query_decodes_an_escaped_plus_as_plus() -> None:
    assert parse_query(b"p=1%2B1") == {"p": "1+1"}


def test_parse_query_decodes_utf8_escapes() -> None:
    assert parse_query(b"p=h%C3%A4llo") == {"p": "hällo"}


def test_parse_query_accepts_lower_and_upper_case_hex_escapes() -> None:
    assert parse_query(b"p=%c3%a4%C3%A4") == {"p": "ää"}


def test_parse_query_uses_the_first_value_of_a_repeated_key() -> None:
    assert parse_query(b"number=3&number=5&number=7") == {"number": "3"}


def test_parse_query_first_value_wins_even_when_it_is_empty() -> None:
    assert parse_query(b"number=&number=5") == {"number": ""}


def test_parse_query_trims_each_value() -> None:
    assert parse_query(b"number=+7+&resolution=%E3%80%80768x576%C2%A0") == {
        "number": "7",
        "resolution": "768x576",
    }


def test_parse_query_does_not_trim_information_separators() -> None:
    assert parse_query(b"prompt=%1Chello") == {"prompt": "\x1chello"}


def test_parse_query_does_not_trim_keys() -> None:
    assert parse_query(b"+secret=x") == {" secret": "x"}


@pytest.mark.parametrize("bad", [b"%", b"%4", b"%G1", b"%%41", b"a%zz", b"%4g"])
def test_parse_query_drops_a_pair_with_a_bad_escape(bad: bytes) -> None:
    assert parse_query(b"prompt=" + bad + b"&number=5") == {"number": "5"}
    assert parse_query(bad + b"=1&number=5") == {"number": "5"}


def test_parse_query_a_dropped_pair_lets_a_later_value_of_the_key_through() -> None:
    assert parse_query(b"number=%zz&number=5") == {"number": "5"}


def test_parse_query_drops_a_pair_holding_a_semicolon() -> None:
    assert parse_query(b"prompt=a;b&number=5") == {"number": "5"}
    assert parse_query(b"x=1;number=3&number=5") == {"number": "5"}


def test_parse_query_keeps_an_escaped_semicolon() -> None:
    assert parse_query(b"prompt=a%3Bb") == {"prompt": "a;b"}


def test_parse_query_a_key_without_equals_has_an_empty_value() -> None:
    assert parse_query(b"token&secret=s") == {"token": "", "secret": "s"}


def test_parse_query_value_keeps_later_equals_signs() -> None:
    assert parse_query(b"captcha=a=b==") == {"captcha": "a=b=="}


def test_parse_query_skips_empty_pairs() -> None:
    assert parse_query(b"&&number=5&&") == {"number": "5"}
    assert parse_query(b"") == {}


def test_parse_query_keeps_undecodable_bytes_as_surrogate_escapes() -> None:
    assert parse_query(b"p=%FFa") == {"p": "\udcffa"}


def test_parse_query_keys_are_case_sensitive() -> None:
    assert parse_query(b"Secret=x") == {"Secret": "x"}
