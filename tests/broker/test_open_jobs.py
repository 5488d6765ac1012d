"""The per-client count of open jobs (the /addJob cap) and the claim-to-complete
histogram, both kept by the queue's scripts; on fakeredis and on a real engine."""

from __future__ import annotations

import asyncio
import re
from importlib import resources

import pytest

from api.metrics import DURATION_BUCKETS_MS
from broker.errors import TooManyOpenJobs
from broker.queue import Queue
from broker.states import JobState

CLIENT = "198.51.100.4"


def token(n: int) -> str:
    return f"{n:032x}"


async def add(queue: Queue, n: int, max_open: int = 2, client: str = CLIENT) -> None:
    await queue.add_job(token(n), "a cat", 2, 768, 576, client=client, max_open=max_open)


async def members(queue: Queue, client: str = CLIENT) -> dict[str, float]:
    return dict(await queue.redis.zrange(queue.keys.client(client), 0, -1, withscores=True))


async def test_open_jobs_add_job_refuses_a_client_at_its_cap(queue: Queue) -> None:
    await add(queue, 1)
    await add(queue, 2)
    with pytest.raises(TooManyOpenJobs):
        await add(queue, 3)
    assert await queue.redis.exists(queue.keys.job(token(3))) == 0
    assert await members(queue) == {token(1): 0, token(2): 0}


async def test_open_jobs_cap_is_per_client_and_zero_means_no_cap(queue: Queue) -> None:
    await add(queue, 1, max_open=1)
    await add(queue, 2, max_open=1, client="198.51.100.5")
    for n in range(3, 6):
        await add(queue, n, max_open=0)
    assert len(await members(queue)) == 4


async def test_open_jobs_a_job_added_without_client_is_not_counted(queue: Queue) -> None:
    await queue.add_job(token(1), "a cat", 1, 768, 576)
    assert await queue.redis.hget(queue.keys.job(token(1)), "client") is None
    # SCAN (on every primary of a cluster), not KEYS (which asks one node)
    assert [key async for key in queue.redis.scan_iter(match=queue.keys.client_prefix + "*")] == []


async def test_open_jobs_complete_frees_the_slot_and_forgets_the_address(queue: Queue) -> None:
    await add(queue, 1, max_open=1)
    await queue.set_state(token(1), JobState.PENDING)
    assert await members(queue) == {token(1): 0}  # pending is still open
    await queue.set_state(token(1), JobState.COMPLETE)
    assert await queue.redis.exists(queue.keys.client(CLIENT)) == 0
    assert await queue.redis.hget(queue.keys.job(token(1)), "client") is None
    await add(queue, 2, max_open=1)


async def test_open_jobs_failed_and_cancelled_free_the_slot(queue: Queue) -> None:
    await add(queue, 1)
    await add(queue, 2)
    await queue.cancel(token(2))
    outcome = JobState.NEW
    while outcome == JobState.NEW:  # each failed attempt requeues, the last one fails
        claim = await queue.claim("w1")
        assert claim is not None and claim.job.token == token(1)
        outcome = await queue.release(claim.job.token, claim.fence, "boom")
    assert outcome == JobState.FAILED
    assert await members(queue) == {}


async def test_open_jobs_a_requeued_job_stays_open(queue: Queue) -> None:
    await add(queue, 1, max_open=1)
    claim = await queue.claim("w1")
    assert claim is not None
    assert await queue.release(claim.job.token, claim.fence, "gpu lost") == JobState.NEW
    assert await members(queue) == {token(1): 0}


async def test_open_jobs_a_held_slot_counts_and_becomes_the_job(queue: Queue) -> None:
    await add(queue, 1)
    await queue.hold_client_slot(CLIENT, token(2), max_open=2, hold_ms=60_000)
    with pytest.raises(TooManyOpenJobs):
        await queue.hold_client_slot(CLIENT, token(3), max_open=2, hold_ms=60_000)
    with pytest.raises(TooManyOpenJobs):
        await add(queue, 3)
    await add(queue, 2)  # takes its own held slot: not refused
    assert await members(queue) == {token(1): 0, token(2): 0}
    assert await queue.redis.ttl(queue.keys.client(CLIENT)) == -1  # open jobs: no expiry


async def test_open_jobs_a_released_slot_is_free_again(queue: Queue) -> None:
    await queue.hold_client_slot(CLIENT, token(1), max_open=1, hold_ms=60_000)
    assert 0 < await queue.redis.pttl(queue.keys.client(CLIENT)) <= 60_000
    assert await queue.release_client_slot(CLIENT, token(1)) is True
    assert await queue.release_client_slot(CLIENT, token(1)) is False
    assert await queue.redis.exists(queue.keys.client(CLIENT)) == 0
    await queue.hold_client_slot(CLIENT, token(2), max_open=1, hold_ms=60_000)


async def test_open_jobs_release_never_drops_an_open_job(queue: Queue) -> None:
    await add(queue, 1, max_open=1)
    assert await queue.release_client_slot(CLIENT, token(1)) is False
    assert await members(queue) == {token(1): 0}


async def test_open_jobs_a_hold_of_a_request_that_died_ends_by_itself(queue: Queue) -> None:
    await queue.hold_client_slot(CLIENT, token(1), max_open=1, hold_ms=5)
    await asyncio.sleep(0.05)  # only "later than 5 ms" matters, not how much
    await queue.hold_client_slot(CLIENT, token(2), max_open=1, hold_ms=60_000)
    assert list(await members(queue)) == [token(2)]


async def test_open_jobs_racing_adds_of_one_client_never_pass_the_cap(queue: Queue) -> None:
    results = await asyncio.gather(
        *(add(queue, n, max_open=3) for n in range(20)), return_exceptions=True
    )
    assert sum(result is None for result in results) == 3
    assert all(isinstance(r, TooManyOpenJobs) for r in results if r is not None)


async def test_durations_a_completion_is_counted_in_its_resolution_bucket(queue: Queue) -> None:
    await queue.add_job(token(1), "a cat", 1, 1024, 576)
    await queue.set_state(token(1), JobState.PENDING)
    await queue.redis.hset(queue.keys.job(token(1)), "started_ms", 0)  # claimed long ago
    await queue.set_state(token(1), JobState.COMPLETE)
    await queue.add_job(token(2), "a cat", 1, 1024, 576)
    await queue.set_state(token(2), JobState.PENDING)
    await queue.set_state(token(2), JobState.COMPLETE)
    fields = await queue.redis.hgetall(queue.keys.durations)
    assert fields["1024x576:count"] == "2"
    assert fields["1024x576:le:inf"] == "1"
    assert fields["1024x576:le:1000"] == "1"  # claimed and completed at once
    assert int(fields["1024x576:sum_ms"]) > 10**12


async def test_durations_failed_and_cancelled_jobs_are_not_counted(queue: Queue) -> None:
    await queue.add_job(token(1), "a cat", 1, 768, 576)
    await queue.cancel(token(1))
    assert await queue.redis.hgetall(queue.keys.durations) == {}


def test_durations_buckets_match_the_lua_list() -> None:
    lib = (resources.files("broker.lua") / "_lib.lua").read_text(encoding="utf-8")
    found = re.search(r"local bounds = \{([0-9, ]+)\}", lib)
    assert found is not None
    assert tuple(int(b) for b in found.group(1).split(",")) == DURATION_BUCKETS_MS
