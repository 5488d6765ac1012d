"""The legacy contract's parameter checks: each returns its error messages in contract order.

These are pure functions over already-trimmed strings, shared by the legacy
endpoints and the v2 API so that both apply exactly the same rules.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from api.errors import FieldError
from api.legacy.query import byte_length
from broker.images import SIZES

MAX_PROMPT_BYTES = 500
MAX_CAPTCHA_BYTES = 5000
MIN_NUMBER, MAX_NUMBER = 1, 16
RESOLUTIONS: dict[str, tuple[int, int]] = {f"{w}x{h}": (w, h) for w, h in SIZES}
TOKEN_BYTES = 32  # checked as Go's len(); broker/tokens.py defines what may exist
NON_PRINTABLE = "prompt contains a non-printable ASCII character (after transliteration of DE/IT)"

_TRANSLITERATION = str.maketrans(
    {
        "ä": "ae",
        "ö": "oe",
        "ü": "ue",
        "Ä": "Ae",
        "Ö": "Oe",
        "Ü": "Ue",
        "ß": "ss",
        "à": "a",
        "è": "e",
        "ì": "i",
        "ò": "o",
        "ù": "u",
        "á": "a",
        "é": "e",
        "í": "i",
        "ó": "o",
        "ú": "u",
        "À": "A",
        "È": "E",
        "Ì": "I",
        "Ò": "O",
        "Ù": "U",
        "Á": "A",
        "É": "E",
        "Í": "I",
        "Ó": "O",
        "Ú": "U",
    }
)
_GO_INT = re.compile(r"[+-]?[0-9]+", re.ASCII)
_INT64_MIN, _INT64_MAX = -(2**63), 2**63 - 1
_INT64_DIGITS = len(str(_INT64_MAX))


@dataclass(frozen=True, slots=True)
class JobRequest:
    """A valid /addJob request, before the captcha is verified."""

    prompt: str
    number: int
    width: int
    height: int
    captcha: str


def transliterate(prompt: str) -> str:
    return prompt.translate(_TRANSLITERATION)


def parse_go_int(text: str) -> int | None:
    """strconv.ParseInt(text, 10, 64): sign, ASCII digits, int64 range; else None."""
    if not _GO_INT.fullmatch(text):
        return None
    # int() refuses more than 4300 digits (a ValueError, so a 500): drop leading
    # zeros, and anything with more significant digits than int64 has is out.
    digits = text.lstrip("+-").lstrip("0") or "0"
    if len(digits) > _INT64_DIGITS:
        return None
    value = -int(digits) if text.startswith("-") else int(digits)
    return value if _INT64_MIN <= value <= _INT64_MAX else None


def check_prompt(raw: str) -> tuple[str, list[FieldError]]:
    errors = []
    if raw == "":
        errors.append(FieldError("prompt", "missing prompt"))
    elif byte_length(raw) > MAX_PROMPT_BYTES:
        errors.append(FieldError("prompt", "prompt too long"))
    prompt = transliterate(raw)
    if any(not 32 <= ord(char) <= 126 for char in prompt):
        errors.append(FieldError("prompt", NON_PRINTABLE))
    return prompt, errors


def check_number(raw: str) -> tuple[int, list[FieldError]]:
    if raw == "":
        return 0, [FieldError("number", "missing number")]
    number = parse_go_int(raw)
    if number is None:
        return 0, [FieldError("number", "cannot parse number")]
    if not MIN_NUMBER <= number <= MAX_NUMBER:
        return 0, [FieldError("number", "number out of range")]
    return number, []


def check_resolution(raw: str) -> tuple[tuple[int, int], list[FieldError]]:
    if raw == "":
        return (0, 0), [FieldError("resolution", "missing resolution")]
    size = RESOLUTIONS.get(raw)
    if size is None:
        return (0, 0), [FieldError("resolution", "invalid resolution")]
    return size, []


def check_captcha(raw: str) -> list[FieldError]:
    if raw == "":
        return [FieldError("captcha", "missing captcha")]
    if byte_length(raw) > MAX_CAPTCHA_BYTES:
        return [FieldError("captcha", "captcha too long")]
    return []


def check_job_request(
    prompt: str,
    number: str,
    resolution: str,
    captcha: str,
) -> JobRequest | list[FieldError]:
    """Checks 1-5 of /addJob, every failure collected in the contract's order."""
    clean_prompt, prompt_errors = check_prompt(prompt)
    count, number_errors = check_number(number)
    (width, height), resolution_errors = check_resolution(resolution)
    errors = prompt_errors + number_errors + resolution_errors + check_captcha(captcha)
    if errors:
        return errors
    return JobRequest(clean_prompt, count, width, height, captcha)


def check_token(raw: str) -> list[FieldError]:
    if raw == "":
        return [FieldError("token", "missing token")]
    if byte_length(raw) != TOKEN_BYTES:
        return [FieldError("token", "wrong size for token")]
    return []
