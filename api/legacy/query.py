"""Reads a query string the way the original Go service did (net/url + strings.TrimSpace).

- pairs split on '&'; a pair holding ';' or a bad %-escape is dropped (Go >= 1.17);
- '+' and '%20' both decode to a space; the first value of a repeated key wins;
- decoded bytes that are not UTF-8 survive as surrogate escapes, so byte lengths
  (Go's `len`) stay exact and such values fail the printable-ASCII check;
- every value is trimmed of Unicode White_Space only. Python's str.strip() would
  also eat U+001C..U+001F, which Go keeps.
"""

from __future__ import annotations

import re

_WHITE_SPACE = (
    "\t\n\v\f\r \x85\xa0\u1680\u2000\u2001\u2002\u2003\u2004\u2005\u2006"
    "\u2007\u2008\u2009\u200a\u2028\u2029\u202f\u205f\u3000"
)
_BAD_ESCAPE = re.compile(rb"%(?![0-9A-Fa-f]{2})")
_ESCAPE = re.compile(rb"%([0-9A-Fa-f]{2})")


def go_trim(value: str) -> str:
    """strings.TrimSpace: strips Unicode White_Space, nothing else."""
    return value.strip(_WHITE_SPACE)


def byte_length(value: str) -> int:
    """Go's len(): UTF-8 bytes, counting undecodable input bytes one each (and a lone
    surrogate from JSON, which no query can carry, as the 3 bytes Go would count)."""
    try:
        return len(value.encode("utf-8", "surrogateescape"))
    except UnicodeEncodeError:
        return len(value.encode("utf-8", "surrogatepass"))


def is_utf8(value: str) -> bool:
    """Whether `value` is text that can be stored and sent on: no undecodable query
    bytes (kept as surrogate escapes) and no lone surrogates (which JSON can hold)."""
    try:
        value.encode("utf-8")
    except UnicodeEncodeError:
        return False
    return True


def _unescape(raw: bytes) -> str | None:
    if _BAD_ESCAPE.search(raw):
        return None
    data = _ESCAPE.sub(lambda m: bytes((int(m.group(1), 16),)), raw.replace(b"+", b" "))
    return data.decode("utf-8", "surrogateescape")


def _decode(raw: bytes) -> str:
    return raw.decode("utf-8", "surrogateescape")


def parse_query(raw: bytes) -> dict[str, str]:
    """First value of every key, trimmed; pairs Go would reject are left out."""
    # Without '%' or '+' there is nothing to unescape (the usual poll): decode only.
    unescape = _unescape if b"%" in raw or b"+" in raw else _decode
    params: dict[str, str] = {}
    for pair in raw.split(b"&"):
        if not pair or b";" in pair:
            continue
        key_raw, _, value_raw = pair.partition(b"=")
        key = unescape(key_raw)
        value = unescape(value_raw)
        if key is None or value is None or key in params:
            continue
        params[key] = go_trim(value)
    return params
