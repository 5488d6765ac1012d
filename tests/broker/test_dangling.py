"""Index entries whose job hash is gone (eviction, a partial restore, manual cleanup):
every script that finds a token in an index drops all of the job's entries, gives back
its images and its client's slot, and never writes a partial hash; reads of a partial
hash say "not found". Each broken state is built by hand, on every engine."""

from __future__ import annotations

import pytest

from broker.errors import BrokerError, JobNotFound, TooManyOpenJobs
from broker.fair import Scheduling
from broker.lua import Scripts
from broker.queue import Queue
from tests.broker.helpers import (
    add,
    check_indexes,
    check_sums,
    job_hashes,
    scores,
    server_ms,
    token,
    tuned,
    wait_past,
)

CLIENT = "198.51.100.9"


async def lose(queue: Queue, *tokens: str) -> None:
    """What eviction or a DEL by hand leaves: the indexes list jobs that are gone."""
    await queue.redis.delete(*(queue.keys.job(t) for t in tokens))


async def forget_record(queue: Queue, *tokens: str) -> None:
    """A job added before {p}:open records existed."""
    await queue.redis.hdel(queue.keys.open, *tokens)


async def open_jobs(queue: Queue, client: str = CLIENT) -> dict[str, float]:
    return await scores(queue.redis, queue.keys.client(client))


async def add_for(queue: Queue, i: int, number: int = 2, max_open: int = 0) -> str:
    await queue.add_job(token(i), f"job {i}", number, 576, 576, client=CLIENT, max_open=max_open)
    return token(i)


async def expire(queue: Queue, lease_ms: int = 50) -> str:
    """Claims the next job under a short lease and waits until it has run out."""
    claim = await queue.claim("gpu-lost", lease_ms=lease_ms)
    assert claim is not None and claim.lease_until_ms is not None
    await wait_past(queue.redis, claim.lease_until_ms)
    return claim.job.token


@pytest.mark.parametrize("scheduling", list(Scheduling))
async def test_dangling_claim_drops_a_lost_head_and_claims_the_next(
    queue: Queue, scheduling: Scheduling
) -> None:
    q = tuned(queue, scheduling=scheduling)
    lost = await add_for(q, 1, number=3)
    kept = await add_for(q, 2)
    await lose(q, lost)

    claim = await q.claim("gpu-1")

    assert claim is not None and claim.job.token == kept
    assert lost not in await job_hashes(q)  # no partial hash written
    assert await open_jobs(q) == {kept: 0}  # the lost job's slot is free
    await check_indexes(q)
    await check_sums(q)


async def test_dangling_next_job_drops_lost_heads_and_names_the_next(queue: Queue) -> None:
    await add_for(queue, 1)
    await add_for(queue, 2)
    kept = await add_for(queue, 3)
    await lose(queue, token(1), token(2))

    job = await queue.next_job()

    assert job is not None and job.token == kept
    await check_indexes(queue)
    await check_sums(queue)


async def test_dangling_claim_of_a_queue_of_lost_jobs_finds_nothing(queue: Queue) -> None:
    for i in range(3):
        await add_for(queue, i)
    await lose(queue, *(token(i) for i in range(3)))

    assert await queue.claim("gpu-1") is None
    assert await queue.next_job() is None
    f = await queue.figures()
    assert (f.waiting, f.new_images, f.oldest_open_ms) == (0, 0, None)
    assert await open_jobs(queue) == {}
    await check_indexes(queue)


async def test_dangling_sweep_drops_a_lost_pending_job(queue: Queue) -> None:
    await add_for(queue, 1, number=4)
    lost = await expire(queue)
    await lose(queue, lost)

    swept = await queue.requeue_expired()

    assert (swept.counts, swept.dropped, swept.full, swept.recount) == ((0, 0, 0), 1, False, False)
    assert await open_jobs(queue) == {}
    assert (await queue.figures()).pending_images == 0
    await check_indexes(queue)
    await check_sums(queue)


async def test_dangling_sweep_drops_a_lost_reserved_job(queue: Queue) -> None:
    q = tuned(queue, reservation_ms=50)
    await add_for(q, 1)
    job = await q.next_job()
    assert job is not None
    await lose(q, job.token)
    await wait_past(q.redis, await server_ms(q.redis) + 60)

    swept = await q.requeue_expired()

    assert (swept.unreserved, swept.dropped) == (1, 1)
    await check_indexes(q)
    await check_sums(q)


async def test_dangling_partial_hash_reads_as_not_found_and_is_removed(queue: Queue) -> None:
    """What the old claim left: a hash with state=pending and no member, no TTL."""
    await add_for(queue, 1)
    lost = await expire(queue)
    key = queue.keys.job(lost)
    await queue.redis.delete(key)
    await queue.redis.hset(key, mapping={"state": "pending", "fence": 1, "lease_until": 1})

    with pytest.raises(JobNotFound):
        await queue.status(lost)
    with pytest.raises(JobNotFound):
        await queue.job_details(lost, 30_000)
    assert (await queue.requeue_expired()).dropped == 1
    assert await queue.redis.exists(key) == 0
    await check_indexes(queue)


async def test_dangling_job_without_a_record_is_counted_again(queue: Queue) -> None:
    lost = await add_for(queue, 1, number=5)
    kept = await add_for(queue, 2)
    await forget_record(queue, lost)
    await lose(queue, lost)

    claim = await queue.claim("gpu-1")
    assert claim is not None and claim.job.token == kept
    assert (await queue.requeue_expired()).recount  # the sums are to be counted again

    f = await queue.figures()  # counts them, once
    assert (f.new_images, f.pending_images) == (0, 2)
    assert not (await queue.requeue_expired()).recount
    await check_indexes(queue)
    await check_sums(queue)


async def test_dangling_lease_without_a_record_leaves_active_to_the_recount(queue: Queue) -> None:
    await add_for(queue, 1)
    lost = await expire(queue)
    await forget_record(queue, lost)
    await lose(queue, lost)

    swept = await queue.requeue_expired()
    assert (swept.dropped, swept.recount) == (1, True)

    await queue.figures()  # drops the member active kept, while it counts
    assert await queue.redis.zcard(queue.keys.active) == 0
    await check_indexes(queue)
    await check_sums(queue)


async def test_dangling_entries_fill_a_sweep_batch_like_any_other(queue: Queue) -> None:
    q = tuned(queue, sweep_limit=2)
    for i in range(5):
        await add(q, i)
    claims = [await q.claim("gpu-lost", lease_ms=200) for _ in range(5)]
    lost = [claim.job.token for claim in claims if claim is not None]
    await wait_past(q.redis, max(c.lease_until_ms or 0 for c in claims if c is not None))
    await lose(q, *lost)

    batches = [await q.requeue_expired() for _ in range(4)]

    assert [b.dropped for b in batches] == [2, 2, 1, 0]
    assert [b.full for b in batches] == [True, True, False, False]
    await check_indexes(q)


async def test_dangling_slot_of_a_lost_job_is_freed_when_its_client_is_at_the_cap(
    queue: Queue,
) -> None:
    """A token only the client's zset still lists (nothing indexes it any more) is
    found when the cap would refuse the client, not kept for good."""
    lost = await add_for(queue, 1, max_open=1)
    await lose(queue, lost)
    await queue.redis.zrem(queue.keys.active, *await queue.redis.zrange(queue.keys.active, 0, -1))
    await queue.redis.zrem(queue.keys.waiting, *await queue.redis.zrange(queue.keys.waiting, 0, -1))
    await forget_record(queue, lost)

    await queue.hold_client_slot(CLIENT, token(2), max_open=1, hold_ms=10_000)
    await add_for(queue, 2, max_open=1)

    assert await open_jobs(queue) == {token(2): 0}
    with pytest.raises(TooManyOpenJobs):
        await add_for(queue, 3, max_open=1)


def test_dangling_reply_of_the_wrong_shape_is_a_broker_error() -> None:
    """A reply cut short (a Lua table with a hole) is refused in one place, never an
    unpacking ValueError in a caller."""
    with pytest.raises(BrokerError, match=r"claim_job\.lua: a reply of 2 values"):
        Scripts.values("claim_job", ["OK", "0" * 32, 3])
    with pytest.raises(BrokerError, match="not a script reply"):
        Scripts.values("get_status", None)
    assert Scripts.values("claim_job", ["OK"]) == []
