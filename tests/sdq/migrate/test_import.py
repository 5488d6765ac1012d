"""`sdq import-sqlite`: the original service's SQLite jobs, moved into Redis.

Each database is built here with the original's schema. What a frontend or a
backend sees after the import is compared with what the original itself would
have answered from the same file (its QueueLength is a COUNT over the table)."""

from __future__ import annotations

import asyncio
import json
import random
import sqlite3
import time
from pathlib import Path

import httpx
import pytest
from redis.asyncio import Redis

from api.settings import ApiSettings
from broker.errors import JobNotFound
from broker.keys import QueueKeys
from broker.queue import Queue
from broker.settings import BrokerSettings
from broker.states import JobState
from sdq.embedded_redis import EmbeddedRedis
from sdq.migrate.command import import_rows
from sdq.migrate.sqlite import iter_rows, open_legacy_db
from tests.sdq.migrate.support import (
    import_file,
    job_row,
    legacy_db,
    mixed_rows,
    original_status,
    redis_now_ms,
    token,
)


async def test_import_status_matches_what_the_original_showed(
    redis: Redis, queue: Queue, tmp_path: Path
) -> None:
    path = legacy_db(tmp_path / "queue.db", mixed_rows(await redis_now_ms(redis)))

    report = await import_file(path, queue)

    assert report.total("imported") == 60 and not report.bad_rows
    for i in range(60):
        state, created, queue_length = original_status(path, token(i))
        status = await queue.status(token(i))
        assert (status.state, status.created_ms, status.queue_length) == (
            state,
            created,
            queue_length,
        )
        assert status.age_ms == status.now_ms - created


async def test_import_legacy_job_status_answers_as_before_the_switch(
    redis: Redis, client: httpx.AsyncClient, queue: Queue, tmp_path: Path
) -> None:
    path = legacy_db(tmp_path / "queue.db", mixed_rows(await redis_now_ms(redis), count=12))
    await import_file(path, queue)

    for i in range(12):
        state, created, queue_length = original_status(path, token(i))
        before = await redis_now_ms(redis)
        response = await client.get("/getJobStatus", params={"token": token(i)})
        after = await redis_now_ms(redis)
        body = json.loads(response.content)
        assert response.status_code == 200
        assert list(body) == ["Token", "State", "Age", "QueueLength"]
        assert (body["Token"], body["State"], body["QueueLength"]) == (
            token(i),
            state,
            queue_length,
        )
        assert (before - created) / 1000 <= body["Age"] <= (after - created) / 1000


async def test_import_keeps_fifo_order_of_new_jobs(
    redis: Redis, queue: Queue, tmp_path: Path
) -> None:
    now = await redis_now_ms(redis)
    rand = random.Random(11)
    created = [now - 1_000_000 + rand.randrange(0, 10) for _ in range(30)]  # many ties
    path = legacy_db(tmp_path / "queue.db", [job_row(i, created[i]) for i in range(30)])
    await import_file(path, queue)
    await queue.add_job(token(999), "after the switch", 1, 576, 576)

    order = []
    while (claim := await queue.claim("worker-1")) is not None:
        order.append(claim.job.token)

    expected = [token(i) for i in sorted(range(30), key=lambda i: (created[i], i))]
    assert order == [*expected, token(999)]


async def test_import_pending_job_has_a_lease_sized_to_its_work(
    redis: Redis, queue: Queue, tmp_path: Path
) -> None:
    now = await redis_now_ms(redis)
    path = legacy_db(tmp_path / "queue.db", [job_row(1, now - 60_000, "pending", "4")])
    before = await redis_now_ms(redis)
    await import_file(path, queue)
    after = await redis_now_ms(redis)

    s = queue.settings
    lease_ms = s.lease_base_ms + -(-s.lease_per_megapixel_ms * 4 * 768 * 576 // 1_000_000)
    lease_end = await redis.zscore(queue.keys.leases, token(1))
    assert lease_end is not None
    assert before + lease_ms <= lease_end <= after + lease_ms
    assert (await queue.counts())["pending"] == 1


async def test_import_pending_job_can_still_be_completed_by_its_old_backend(
    redis: Redis, queue: Queue, tmp_path: Path
) -> None:
    now = await redis_now_ms(redis)
    rows = [job_row(1, now - 60_000, "pending"), job_row(2, now - 30_000, "new")]
    path = legacy_db(tmp_path / "queue.db", rows)
    await import_file(path, queue)

    await queue.set_state(token(1), JobState.COMPLETE)

    assert (await queue.status(token(1))).state is JobState.COMPLETE
    assert (await queue.status(token(2))).queue_length == 0


async def test_import_pending_job_of_a_gone_backend_returns_to_new(
    redis: Redis, settings: ApiSettings, tmp_path: Path
) -> None:
    short = settings.model_copy(update={"lease_base_ms": 1000, "lease_per_megapixel_ms": 0})
    queue = Queue(redis, short)
    now = await redis_now_ms(redis)
    rows = [job_row(1, now - 60_000, "pending"), job_row(2, now - 30_000, "new")]
    path = legacy_db(tmp_path / "queue.db", rows)
    await import_file(path, queue)

    await asyncio.sleep(1.2)  # past the 1 s lease on the Redis clock; no upper bound is asserted
    await queue.requeue_expired()

    status = await queue.status(token(1))
    assert (status.state, status.attempts, status.created_ms) == (JobState.NEW, 1, now - 60_000)
    claim = await queue.claim("worker-1")
    assert claim is not None and claim.job.token == token(1)


async def test_import_complete_job_expires_its_retention_after_completion(
    redis: Redis, queue: Queue, tmp_path: Path
) -> None:
    now = await redis_now_ms(redis)
    retention = queue.settings.retention_ms
    rows = [
        job_row(1, now - 90_000, "complete", completed_ms=now - 80_000),
        job_row(2, now - 70_000, "complete", completed_ms=None),
    ]
    path = legacy_db(tmp_path / "queue.db", rows)
    before = await redis_now_ms(redis)
    await import_file(path, queue)
    after = await redis_now_ms(redis)

    assert await redis.pexpiretime(queue.keys.job(token(1))) == now - 80_000 + retention
    unknown_end = await redis.pexpiretime(queue.keys.job(token(2)))
    assert before + retention <= unknown_end <= after + retention
    assert (await queue.counts())["new"] == 0


async def test_import_skips_complete_jobs_past_their_retention(
    redis: Redis, queue: Queue, tmp_path: Path
) -> None:
    now = await redis_now_ms(redis)
    old = now - queue.settings.retention_ms - 1000
    rows = [job_row(1, old - 5000, "complete", completed_ms=old), job_row(2, now - 10, "new")]
    path = legacy_db(tmp_path / "queue.db", rows)

    report = await import_file(path, queue)

    assert report.counts["complete"]["expired"] == 1
    assert report.counts["new"]["imported"] == 1
    with pytest.raises(JobNotFound):
        await queue.status(token(1))


async def snapshot(redis: Redis, keys: QueueKeys) -> dict[str, object]:
    """Every key of the queue with its type, value and expiry time."""
    found: dict[str, object] = {}
    async for key in redis.scan_iter(match=keys.tag + "*"):
        kind = await redis.type(key)
        if kind == "hash":
            value: object = await redis.hgetall(key)
        elif kind == "zset":
            value = await redis.zrange(key, 0, -1, withscores=True)
        elif kind == "list":
            value = await redis.lrange(key, 0, -1)
        else:
            value = await redis.get(key)
        found[key] = (kind, value, await redis.pexpiretime(key))
    return found


async def test_import_twice_changes_nothing(redis: Redis, queue: Queue, tmp_path: Path) -> None:
    path = legacy_db(tmp_path / "queue.db", mixed_rows(await redis_now_ms(redis), count=40))
    first = await import_file(path, queue)
    before = await snapshot(redis, queue.keys)

    second = await import_file(path, queue)

    assert await snapshot(redis, queue.keys) == before
    assert second.total("present") == first.total("imported") == 40
    assert second.total("imported") == 0


async def test_import_reports_and_skips_bad_rows(
    redis: Redis, queue: Queue, tmp_path: Path
) -> None:
    now = await redis_now_ms(redis)
    good = [job_row(1, now - 100, number="+3"), job_row(2, now - 90, "pending", number="03")]
    bad = [
        (now, "prompt", "1", 768, 576, "ABCDEF" + "0" * 26, "new", None),
        (now, "prompt", "1", 768, 576, "abc", "new", None),
        (now, "prompt", "1", 768, 576, token(10), "done", None),
        (None, "prompt", "1", 768, 576, token(11), "new", None),
        (now, "prompt", "many", 768, 576, token(12), "new", None),
        (now, "prompt", "17", 768, 576, token(13), "new", None),
        (now, "prompt", "0", 768, 576, token(14), "pending", None),
        (now, "prompt", "1", 512, 512, token(15), "new", None),
        (now, "bell\x07", "1", 768, 576, token(16), "new", None),
        (now, "x" * 501, "1", 768, 576, token(17), "new", None),
        (now, "", "1", 768, 576, token(18), "complete", now),
        (now, "prompt", "1", 768, 576, token(19), "complete", "yesterday"),
    ]
    path = legacy_db(tmp_path / "queue.db", [*good, *bad])
    with sqlite3.connect(path) as db:  # text that is not UTF-8, as a C client could store
        db.execute(
            "INSERT INTO jobs VALUES (?, CAST(x'ff61' AS TEXT), '1', 768, 576, ?, 'new', NULL)",
            (now, token(20)),
        )
    db.close()

    report = await import_file(path, queue)

    reasons = {row.token: row.reason for row in report.bad_rows}
    assert len(report.bad_rows) == 13
    assert "token" in reasons["?"]
    assert "state" in reasons[token(10)]
    assert "created_ms" in reasons[token(11)]
    assert [reasons[token(i)].split()[0] for i in (12, 13, 14, 15)] == [
        "number",
        "number",
        "number",
        "width",
    ]
    assert all("prompt" in reasons[token(i)] for i in (16, 17, 18, 20))
    assert "completed_ms" in reasons[token(19)]
    assert report.counts["new"]["imported"] == report.counts["pending"]["imported"] == 1
    assert report.counts["new"]["skipped"] == 9
    assert (await queue.status(token(1))).number == 3
    assert (await queue.status(token(2))).number == 3
    for i in range(10, 21):
        with pytest.raises(JobNotFound):
            await queue.status(token(i))


async def test_import_dry_run_checks_rows_and_writes_nothing(
    redis: Redis, queue: Queue, tmp_path: Path
) -> None:
    now = await redis_now_ms(redis)
    rows = [job_row(1, now, "new"), job_row(2, now, "nope")]
    path = legacy_db(tmp_path / "queue.db", rows)

    report = await import_file(path, None)

    assert report.counts["new"]["valid"] == 1 and len(report.bad_rows) == 1
    assert await snapshot(redis, queue.keys) == {}


async def test_import_100k_jobs_on_the_real_engine(
    redis_engine: EmbeddedRedis, prefix: str, tmp_path: Path
) -> None:
    rows = mixed_rows(int(time.time() * 1000), count=100_000, seed=3)
    path = legacy_db(tmp_path / "queue.db", rows)
    client = Redis.from_url(redis_engine.url, decode_responses=True)
    queue = Queue(client, BrokerSettings(key_prefix=prefix))
    try:
        started = time.perf_counter()
        db = open_legacy_db(path)
        report = await import_rows(iter_rows(db), queue)
        db.close()
        seconds = time.perf_counter() - started
        print(f"imported 100,000 jobs in {seconds:.1f} s")  # shown with pytest -s

        assert report.total("imported") == 100_000
        for i in (0, 4_242, 99_999):
            state, created, queue_length = original_status(path, token(i))
            status = await queue.status(token(i))
            assert (status.state, status.created_ms, status.queue_length) == (
                state,
                created,
                queue_length,
            )
    finally:
        await client.aclose()
