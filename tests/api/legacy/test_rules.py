"""The contract's parameter checks as pure functions (api/legacy/rules.py)."""

from __future__ import annotations

import pytest

from api.legacy.rules import (
    NON_PRINTABLE,
    JobRequest,
    check_captcha,
    check_job_request,
    check_number,
    check_prompt,
    check_resolution,
    check_token,
    parse_go_int,
    transliterate,
)


def messages(errors: object) -> list[str]:
    assert isinstance(errors, list)
    return [error.message for error in errors]


def test_transliterate_german_umlauts_and_sharp_s() -> None:
    assert transliterate("äöüÄÖÜß") == "aeoeueAeOeUess"


def test_transliterate_italian_accented_vowels_both_cases() -> None:
    assert transliterate("àèìòùáéíóú") == "aeiouaeiou"
    assert transliterate("ÀÈÌÒÙÁÉÍÓÚ") == "AEIOUAEIOU"


def test_transliterate_leaves_other_characters_alone() -> None:
    assert transliterate("ñ çâ hello") == "ñ çâ hello"


def test_check_prompt_accepts_printable_ascii() -> None:
    assert check_prompt("A yellow mountain bike, ~!") == ("A yellow mountain bike, ~!", [])


def test_check_prompt_empty_is_missing() -> None:
    assert messages(check_prompt("")[1]) == ["missing prompt"]


def test_check_prompt_500_bytes_is_allowed_501_is_too_long() -> None:
    assert check_prompt("a" * 500)[1] == []
    assert messages(check_prompt("a" * 501)[1]) == ["prompt too long"]


def test_check_prompt_measures_bytes_before_transliteration() -> None:
    # 250 x 'ä' is 500 bytes (and becomes 500 characters 'ae'): allowed.
    prompt, errors = check_prompt("ä" * 250)
    assert errors == []
    assert prompt == "ae" * 250
    # 251 x 'ä' is 502 bytes, though only 251 characters.
    assert messages(check_prompt("ä" * 251)[1]) == ["prompt too long"]


def test_check_prompt_non_printable_message_said_once() -> None:
    assert messages(check_prompt("a\x01b\x02c\u00f1")[1]) == [NON_PRINTABLE]


@pytest.mark.parametrize("char", ["\x1c", "\x1f", "\x7f", "\t", "\x00", "ñ", "\u3000", "🙂"])
def test_check_prompt_rejects_characters_outside_32_to_126(char: str) -> None:
    assert messages(check_prompt(f"hello{char}world")[1]) == [NON_PRINTABLE]


def test_check_prompt_too_long_and_non_printable_both_reported_in_order() -> None:
    assert messages(check_prompt("a" * 500 + "\x01")[1]) == ["prompt too long", NON_PRINTABLE]


def test_check_prompt_message_text_is_the_originals() -> None:
    assert NON_PRINTABLE == (
        "prompt contains a non-printable ASCII character (after transliteration of DE/IT)"
    )


@pytest.mark.parametrize(
    ("text", "value"),
    [
        ("5", 5),
        ("+5", 5),
        ("-1", -1),
        ("0", 0),
        ("007", 7),
        ("-0", 0),
        ("9223372036854775807", 2**63 - 1),
        ("-9223372036854775808", -(2**63)),
    ],
)
def test_parse_go_int_reads_what_strconv_parseint_reads(text: str, value: int) -> None:
    assert parse_go_int(text) == value


@pytest.mark.parametrize(
    "text",
    [
        "",
        "+",
        "-",
        "1_6",
        "0x10",
        "1e1",
        "7 7",
        " 7",
        "1.0",
        "++1",
        "+-1",
        "٣",
        "\uff10",
        "¹",
        "9223372036854775808",
        "-9223372036854775809",
        "99999999999999999999",
    ],
)
def test_parse_go_int_refuses_what_strconv_parseint_refuses(text: str) -> None:
    assert parse_go_int(text) is None


def test_parse_go_int_handles_thousands_of_digits_without_error() -> None:
    assert parse_go_int("9" * 10_000) is None
    assert parse_go_int("-" + "9" * 10_000) is None
    assert parse_go_int("0" * 10_000 + "5") == 5


@pytest.mark.parametrize(("text", "value"), [("1", 1), ("16", 16), ("+5", 5), ("08", 8)])
def test_check_number_accepts_1_to_16(text: str, value: int) -> None:
    assert check_number(text) == (value, [])


@pytest.mark.parametrize("text", ["0", "17", "-1", "9223372036854775807", "-5"])
def test_check_number_out_of_range(text: str) -> None:
    assert messages(check_number(text)[1]) == ["number out of range"]


@pytest.mark.parametrize("text", ["1_6", "0x10", "1e1", "7 7", "99999999999999999999", "\uff10"])
def test_check_number_cannot_parse(text: str) -> None:
    assert messages(check_number(text)[1]) == ["cannot parse number"]


def test_check_number_empty_is_missing() -> None:
    assert messages(check_number("")[1]) == ["missing number"]


@pytest.mark.parametrize(
    ("text", "size"),
    [
        ("1024x576", (1024, 576)),
        ("768x576", (768, 576)),
        ("576x768", (576, 768)),
        ("576x576", (576, 576)),
    ],
)
def test_check_resolution_accepts_the_four_sizes(text: str, size: tuple[int, int]) -> None:
    assert check_resolution(text) == (size, [])


@pytest.mark.parametrize("text", ["768x13", "576X576", "abc", "x", "512x512", "768x576x1"])
def test_check_resolution_refuses_anything_else(text: str) -> None:
    assert messages(check_resolution(text)[1]) == ["invalid resolution"]


def test_check_resolution_empty_is_missing() -> None:
    assert messages(check_resolution("")[1]) == ["missing resolution"]


def test_check_captcha_limits_bytes() -> None:
    assert check_captcha("c" * 5000) == []
    assert messages(check_captcha("c" * 5001)) == ["captcha too long"]
    assert messages(check_captcha("é" * 2501)) == ["captcha too long"]
    assert messages(check_captcha("")) == ["missing captcha"]


def test_check_job_request_collects_every_message_in_contract_order() -> None:
    errors = check_job_request("a\x01" * 300, "x", "abc", "")
    assert messages(errors) == [
        "prompt too long",
        NON_PRINTABLE,
        "cannot parse number",
        "invalid resolution",
        "missing captcha",
    ]


def test_check_job_request_all_missing() -> None:
    assert messages(check_job_request("", "", "", "")) == [
        "missing prompt",
        "missing number",
        "missing resolution",
        "missing captcha",
    ]


def test_check_job_request_returns_the_transliterated_request() -> None:
    assert check_job_request("Größe", "+3", "576x768", "c") == JobRequest(
        "Groesse", 3, 576, 768, "c"
    )


def test_check_token_sizes_in_bytes() -> None:
    assert messages(check_token("")) == ["missing token"]
    assert messages(check_token("a" * 31)) == ["wrong size for token"]
    assert messages(check_token("a" * 33)) == ["wrong size for token"]
    assert messages(check_token("é" * 32)) == ["wrong size for token"]
    assert check_token("é" * 16) == []
    assert check_token("0" * 32) == []
