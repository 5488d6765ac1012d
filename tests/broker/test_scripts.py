"""The Lua scripts: one file per operation with a header that documents every KEYS,
ARGV and return code it uses; loaded once, called by SHA, reloaded on NOSCRIPT."""

from __future__ import annotations

import hashlib
import re
from importlib import resources

import pytest
from redis.asyncio import Redis

from broker.errors import BrokerError, InvalidTransition, JobNotFound, StaleClaim, TokenExists
from broker.lua import raise_for_code, script_names, script_source
from broker.queue import Queue
from broker.states import JobState
from tests.broker.helpers import add, token

SECTION = re.compile(r"^(KEYS|ARGV|Returns)\b:?(.*)$")
QUEUE_LAYOUT = re.compile(r"queue layout of _lib\.lua")
INDEX = re.compile(r"^\s*(?:KEYS|ARGV)?\[(\d+)(\.\.)?\]")
CODE = re.compile(r"\{'([A-Z_]+)'")


def lib_layout() -> set[int]:
    """The KEYS of the shared layout that _lib.lua's header documents."""
    return {int(i) for i in re.findall(r"^\s*KEYS\[(\d+)\]", raw("_lib"), re.MULTILINE)}


def raw(name: str) -> str:
    return (resources.files("broker.lua") / f"{name}.lua").read_text(encoding="utf-8")


def header_of(name: str) -> str:
    text = raw(name)
    assert text.startswith("--[[\n"), f"{name}.lua does not open with a --[[ header"
    return text[5 : text.index("]]")]


def sections(header: str) -> dict[str, list[str]]:
    """The header's KEYS, ARGV and Returns sections, each as its lines (first line's
    text after the colon included)."""
    found: dict[str, list[str]] = {}
    current = None
    for line in header.splitlines():
        match = SECTION.match(line)
        if match:
            current = match.group(1)
            found[current] = [match.group(2)]
        elif current:
            found[current].append(line)
    return found


def documented(lines: list[str]) -> tuple[set[int], int | None]:
    """Indexes a section documents, and where an open range ('[4..]') starts."""
    indexes, open_from = set(), None
    for line in lines:
        match = INDEX.match(line)
        if match:
            indexes.add(int(match.group(1)))
            if match.group(2):
                open_from = int(match.group(1))
        if QUEUE_LAYOUT.search(line):
            indexes |= lib_layout()
    return indexes, open_from


def used(body: str, table: str) -> set[int]:
    return {int(i) for i in re.findall(table + r"\[(\d+)\]", body)}


def test_scripts_exist_one_per_operation() -> None:
    names = set(script_names())

    assert {
        "add_job",
        "claim_job",
        "get_status",
        "next_job",
        "release_job",
        "renew_lease",
        "requeue_expired",
        "set_state",
    } <= names
    assert not any(name.startswith("_") for name in names)


@pytest.mark.parametrize("name", script_names())
def test_scripts_header_names_the_file_and_its_purpose(name: str) -> None:
    first = header_of(name).splitlines()[0]

    assert first.startswith(f"{name}.lua: ")
    assert len(first) > len(f"{name}.lua: ") + 10


@pytest.mark.parametrize("name", script_names())
def test_scripts_header_documents_keys_argv_and_returns(name: str) -> None:
    header = header_of(name)
    found = sections(header)
    body = raw(name)[len(header) :]

    assert set(found) == {"KEYS", "ARGV", "Returns"}, f"{name}: sections {set(found)}"
    keys, _ = documented(found["KEYS"])
    assert used(body, "KEYS") <= keys, f"{name}: KEYS used but not documented"
    if "queue_keys()" in body:
        assert QUEUE_LAYOUT.search(" ".join(found["KEYS"])), f"{name}: layout not named"
    argv, open_from = documented(found["ARGV"])
    if found["ARGV"][0].strip() == "none":
        assert not used(body, "ARGV"), f"{name}: ARGV documented as none"
    used_argv = used(body, "ARGV")
    assert used_argv <= argv, f"{name}: ARGV {used_argv - argv} not documented"
    assert argv <= used_argv | ({open_from} if open_from else set()), f"{name}: stale ARGV doc"
    returns = "\n".join(found["Returns"])
    for code in set(CODE.findall(body)):
        assert f"'{code}'" in returns, f"{name}: returns {code} without documenting it"


@pytest.mark.parametrize("name", script_names())
def test_scripts_source_inlines_every_include(name: str) -> None:
    source = script_source(name)

    assert not re.search(r"^--@include", source, re.MULTILINE)
    if "--@include _lib.lua" in raw(name):
        assert "local function now_ms()" in source


def test_scripts_error_codes_become_exceptions_in_one_place() -> None:
    assert raise_for_code(["OK", 1, "a"]) == [1, "a"]
    assert raise_for_code(["OK"]) == []
    for code, error in {
        "NOT_FOUND": JobNotFound,
        "BAD_TRANSITION": InvalidTransition,
        "STALE_CLAIM": StaleClaim,
        "TOKEN_EXISTS": TokenExists,
    }.items():
        with pytest.raises(error):
            raise_for_code([code])
    with pytest.raises(BrokerError, match="unexpected script reply"):
        raise_for_code(["SOMETHING_NEW"])


async def test_scripts_survive_a_flushed_script_cache(queue: Queue) -> None:
    await add(queue, 1)
    await queue.redis.script_flush()

    await add(queue, 2)
    nxt = await queue.next_job()
    await queue.set_state(token(1), JobState.PENDING)

    assert nxt is not None and nxt.token == token(1)
    assert (await queue.status(token(2))).queue_length == 1


async def test_scripts_survive_a_flushed_script_cache_on_the_real_engine(
    real_queue: Queue, real_redis: Redis
) -> None:
    await add(real_queue, 1)
    shas = [hashlib.sha1(script_source(name).encode()).hexdigest() for name in script_names()]
    assert any(await real_redis.script_exists(*shas))  # loaded once, on first use

    await real_redis.script_flush()
    assert not any(await real_redis.script_exists(*shas))

    # every operation still works: the client reloads a script on NOSCRIPT
    await add(real_queue, 2)
    claim = await real_queue.claim("w")
    assert claim is not None and claim.job.token == token(1)
    await real_queue.renew_lease(claim.job.token, claim.fence)
    await real_queue.complete(claim.job.token, claim.fence)
    assert (await real_queue.status(token(1))).state is JobState.COMPLETE
    assert (await real_queue.requeue_expired()).counts == (0, 0, 0)


def test_scripts_shared_layout_documents_every_key_it_reads() -> None:
    text = raw("_lib")
    header = text[: text.index("]]")]

    assert used(text[len(header) :], "KEYS") <= lib_layout()
