"""Each script's header is its contract, checked against its source (the script with
_lib.lua inlined): the KEYS and ARGV it lists are exactly those it uses, named as the
script's K table and broker/keys.py's SCRIPT_KEYS name them; every code it returns is
listed and mapped to an exception; and every key it touches reaches it through KEYS,
or is built from a KEYS prefix whose header states the rule (`job_prefix .. token`)."""

from __future__ import annotations

import re
from dataclasses import dataclass
from functools import cache
from importlib import resources

import fakeredis
import pytest

from broker.errors import BrokerError
from broker.keys import PER_CALL, SCRIPT_KEYS, QueueKeys
from broker.lua import _ERRORS, REPLY_LENGTHS, raise_for_code, script_names, script_source
from broker.queue import Queue
from broker.settings import BrokerSettings

ENTRY = re.compile(r"^\s*\[(\d+)(\.\.)?\]\s+(\S+)")
SECTION = re.compile(r"^(KEYS|ARGV|Returns)\b:?(.*)$")
K_TABLE = re.compile(r"local K = \{(.*?)\}", re.DOTALL)
FUNCTION = re.compile(r"^local function (\w+)\(([^)]*)\)", re.MULTILINE)
RETURNED_CODE = re.compile(r"return\s*\{?\s*'([A-Z][A-Z_]*)'")


def raw(name: str) -> str:
    return (resources.files("broker.lua") / f"{name}.lua").read_text(encoding="utf-8")


def code_of(text: str) -> str:
    """Lua without its comments (the header, `--` lines and line ends)."""
    text = re.sub(r"--\[\[.*?\]\]", "", text, flags=re.DOTALL)
    return re.sub(r"--[^\n]*", "", text)


@dataclass(frozen=True)
class Header:
    keys: dict[int, tuple[str, str]]  # index -> (name, the entry's whole text)
    argv: set[int]
    argv_open_from: int | None  # '[4..]': ARGV from there on are read in a loop
    codes: set[str]


def header(name: str) -> Header:
    text = raw(name)
    assert text.startswith("--[[\n"), f"{name}.lua does not open with a --[[ header"
    sections: dict[str, list[str]] = {}
    current = None
    for line in text[5 : text.index("]]")].splitlines():
        if match := SECTION.match(line):
            current = match.group(1)
            sections[current] = [match.group(2)]
        elif current:
            sections[current].append(line)
    keys: dict[int, tuple[str, str]] = {}
    last = None
    for line in sections.get("KEYS", []):
        if match := ENTRY.match(line):
            last = int(match.group(1))
            keys[last] = (match.group(3), line)
        elif last is not None and line.strip():
            keys[last] = (keys[last][0], keys[last][1] + " " + line.strip())
    argv, open_from = set(), None
    for line in sections.get("ARGV", []):
        if match := ENTRY.match(line):
            argv.add(int(match.group(1)))
            if match.group(2):
                open_from = int(match.group(1))
    codes = set(re.findall(r"\{'([A-Z][A-Z_]*)'", "\n".join(sections.get("Returns", []))))
    return Header(keys, argv, open_from, codes)


def used(source: str, table: str) -> set[int]:
    return {int(i) for i in re.findall(table + r"\[(\d+)\]", source)}


@cache
def helpers() -> dict[str, tuple[list[str], str, str]]:
    """_lib.lua's functions: name -> (parameters, code, the `K:` line above it)."""
    text = raw("_lib")
    found = {}
    matches = list(FUNCTION.finditer(text))
    for match, following in zip(matches, [*matches[1:], None], strict=True):
        end = following.start() if following else len(text)
        doc = re.findall(r"^-- K: (.*)$", text[: match.start()], re.MULTILINE)
        params = [p.strip() for p in match.group(2).split(",") if p.strip()]
        found[match.group(1)] = (params, code_of(text[match.start() : end]), doc[-1])
    return found


def called(code: str) -> set[str]:
    """The _lib helpers a piece of code calls, and those they call, and so on."""
    names: set[str] = set()
    todo = [code]
    while todo:
        for name in re.findall(r"\b(\w+)\(", todo.pop()):
            if name in helpers() and name not in names:
                names.add(name)
                todo.append(helpers()[name][1])
    return names


def k_fields(code: str) -> set[str]:
    return set(re.findall(r"\bK\.(\w+)", code))


def body(name: str) -> str:
    return code_of(raw(name))


def k_table(name: str) -> dict[str, int]:
    match = K_TABLE.search(body(name))
    assert match, f"{name}.lua builds no K table from its KEYS"
    entries = [entry.strip() for entry in match.group(1).split(",") if entry.strip()]
    table = {}
    for entry in entries:
        field = re.fullmatch(r"(\w+) = KEYS\[(\d+)\]", entry)
        assert field, f"{name}.lua: K entry {entry!r} is not `name = KEYS[i]`"
        table[field.group(1)] = int(field.group(2))
    return table


@pytest.mark.parametrize("name", script_names())
def test_lua_header_lists_exactly_the_keys_and_argv_the_source_uses(name: str) -> None:
    h, source = header(name), script_source(name)

    assert used(source, "KEYS") == set(h.keys), f"{name}: KEYS used vs listed"
    assert set(h.keys) == set(range(1, len(h.keys) + 1)), f"{name}: KEYS not 1..n"
    argv = used(source, "ARGV")
    assert argv <= h.argv, f"{name}: ARGV {argv - h.argv} used but not listed"
    assert h.argv <= argv | {h.argv_open_from}, f"{name}: ARGV {h.argv - argv} listed, unused"


def test_lua_helpers_read_no_keys_or_argv_and_list_the_fields_of_k_they_need() -> None:
    lib = code_of(raw("_lib"))

    assert "KEYS[" not in lib and "ARGV[" not in lib
    for name, (_, code, doc) in helpers().items():
        needed = k_fields(code).union(*(k_fields(helpers()[h][1]) for h in called(code)))
        listed = set() if doc.startswith("none") else {f.strip() for f in doc.split(",")}
        assert listed == needed, f"_lib.lua {name}: `K:` line says {listed}, uses {needed}"


@pytest.mark.parametrize("name", script_names())
def test_lua_script_builds_k_from_its_own_keys_as_its_header_names_them(name: str) -> None:
    h, code = header(name), body(name)
    table = k_table(name)
    outside = K_TABLE.sub("", code)

    assert "KEYS[" not in outside, f"{name}: KEYS read outside the K table"
    assert {i: field for field, i in table.items()} == {i: n for i, (n, _) in h.keys.items()}
    needed = k_fields(outside).union(*(k_fields(helpers()[f][1]) for f in called(outside)))
    assert needed == set(table), f"{name}: K has {set(table)}, the code needs {needed}"


@pytest.mark.parametrize("name", script_names())
def test_lua_queue_passes_the_keys_the_header_lists_in_its_order(name: str) -> None:
    h = header(name)
    keys = QueueKeys("p")
    token, address = "0123456789abcdef0123456789abcdef", "198.51.100.4"
    names = SCRIPT_KEYS[name]
    per_call = {
        "job": keys.job(token),
        "preview": keys.preview(token),
        "client": keys.client(address),
        "streams": keys.streams(address),
    }
    expected = [per_call[n] if n in per_call else getattr(keys, n) for n in names]

    assert list(names) == [h.keys[i][0] for i in sorted(h.keys)]
    assert "job" not in names[1:] and "client" not in names[:-1] and "streams" not in names[:-1]
    assert "preview" not in names[:-1] and ("preview" not in names or "job" in names)
    queue = Queue(fakeredis.FakeAsyncRedis(), BrokerSettings(key_prefix="p"))
    per_client = "client" in names or "streams" in names
    built = queue._keys(name, token if "job" in names else None, address if per_client else "")
    assert built == expected
    assert set(PER_CALL) >= {n for n in names if n in per_call}


@pytest.mark.parametrize("name", script_names())
def test_lua_every_return_code_is_listed_and_mapped_to_an_exception(name: str) -> None:
    code = body(name)
    returned = set(RETURNED_CODE.findall(code))
    for helper in called(code):
        returned |= set(RETURNED_CODE.findall(helpers()[helper][1]))

    assert returned == header(name).codes, f"{name}: returns {returned}"
    for error in returned - {"OK"}:
        assert error in _ERRORS
        with pytest.raises(BrokerError) as raised:
            raise_for_code([error])
        assert type(raised.value) is not BrokerError, f"{error} is not mapped"


def test_lua_every_mapped_code_is_returned_by_some_script() -> None:
    codes = set().union(*(header(name).codes for name in script_names()))

    assert set(_ERRORS) <= codes


def split_args(text: str, open_at: int) -> list[str]:
    """The comma-separated arguments of the call whose '(' is at text[open_at]."""
    depth, quote, args, start = 0, "", [], open_at + 1
    for i in range(open_at, len(text)):
        ch = text[i]
        if quote:
            quote = "" if ch == quote else quote
        elif ch in "'\"":
            quote = ch
        elif ch in "([{":
            depth += 1
        elif ch in ")]}":
            depth -= 1
            if depth == 0:
                return [*args, text[start:i].strip()]
        elif ch == "," and depth == 1:
            args.append(text[start:i].strip())
            start = i + 1
    raise AssertionError(f"unbalanced call at {text[open_at : open_at + 40]!r}")


def call_args(source: str, function: str) -> list[list[str]]:
    pattern = re.compile(r"(?<![\w.])" + re.escape(function) + r"\(")
    return [
        split_args(source, match.end() - 1)
        for match in pattern.finditer(source)
        if not source[: match.start()].endswith("function ")
    ]


def key_is_given(expr: str, source: str, rules: dict[str, str], seen: frozenset[str]) -> bool:
    """A key expression is a K field that is a key, `K.<prefix> .. x` where the header
    states that rule, or a local whose every value (assignment or argument) is such."""
    if match := re.fullmatch(r"K\.(\w+)", expr):
        return f"{match.group(1)} .. " not in rules.get(match.group(1), "")
    if match := re.fullmatch(r"K\.(\w+)\s*\.\.\s*\S.*", expr):
        return f"{match.group(1)} .. " in rules.get(match.group(1), "")
    if not re.fullmatch(r"[A-Za-z_]\w*", expr):
        return False
    seen = seen | {expr}
    values = re.findall(rf"\blocal {expr}\s*=\s*([^\n]+)", source)
    for function, params in re.findall(r"local function (\w+)\(([^)]*)\)", source):
        names = [p.strip() for p in params.split(",")]
        if expr in names:
            values += [args[names.index(expr)] for args in call_args(source, function)]
    values = [value.strip() for value in values if value.strip() not in seen]  # no cycles
    return bool(values) and all(key_is_given(value, source, rules, seen) for value in values)


@pytest.mark.parametrize("name", script_names())
def test_lua_every_key_comes_from_keys_or_a_stated_prefix_rule(name: str) -> None:
    code = body(name)
    source = "\n".join([code, *(helpers()[helper][1] for helper in sorted(called(code)))])
    rules = {field: header(name).keys[i][1] for field, i in k_table(name).items()}
    keys = [
        args[1] for args in call_args(source, "redis.call") if args[0] != "'TIME'" and len(args) > 1
    ]

    assert keys, name
    bad = [key for key in keys if not key_is_given(key, source, rules, frozenset())]
    assert not bad, f"{name}: keys not given in KEYS: {bad}"
    literals = re.findall(r"'([^'\n]*)'", source)
    assert not [text for text in literals if set(text) & set("{}")], f"{name}: a hash tag"


def test_lua_prefix_rule_check_catches_a_key_built_from_a_literal() -> None:
    rules = {"job_prefix": "[1] job_prefix  a job's hash is job_prefix .. token"}
    source = "local jk = K.job_prefix .. token\nlocal other = 'x:' .. token\n"

    assert key_is_given("jk", source, rules, frozenset())
    assert not key_is_given("other", source, rules, frozenset())
    assert not key_is_given("K.job_prefix", source, rules, frozenset())
    assert not key_is_given("K.stats .. token", source, {"stats": "[2] stats hash"}, frozenset())


def returned_lengths(name: str) -> set[int]:
    """How many values follow 'OK' in each {'OK', ...} shape the header's Returns lists."""
    text = raw(name)
    returns = text[text.index("Returns:") : text.index("]]")]
    lengths = set()
    for match in re.finditer(r"\{'OK'", returns):
        depth, values = 0, 0
        for ch in returns[match.start() :]:
            depth += ch == "{"
            depth -= ch == "}"
            values += ch == "," and depth == 1
            if depth == 0:
                break
        lengths.add(values)
    return lengths


@pytest.mark.parametrize("name", script_names())
def test_lua_reply_lengths_checked_in_one_place_are_the_header_s(name: str) -> None:
    assert set(REPLY_LENGTHS[name]) == returned_lengths(name), name
