"""`sdq import-sqlite`: the original service's SQLite jobs and secrets, moved into Redis.

Each database is built here with the original's schema. What a frontend or a
backend sees after the import is compared with what the original itself would
have answered from the same file (its QueueLength is a COUNT over the table)."""

from __future__ import annotations

import asyncio
import json
import random
import shlex
import sqlite3
import time
from collections.abc import Iterable
from pathlib import Path
from typing import Any

import httpx
import pytest
import redis as sync_redis
from redis.asyncio import Redis

from api.settings import ApiSettings
from broker.errors import JobNotFound
from broker.keys import QueueKeys
from broker.queue import Queue
from broker.settings import BrokerSettings
from broker.states import JobState
from sdq.cli import main
from sdq.embedded_redis import EmbeddedRedis
from sdq.migrate.command import ImportReport, import_rows, secret_lines
from sdq.migrate.sqlite import iter_rows, open_legacy_db

LEGACY_SCHEMA = """
CREATE TABLE jobs (created_ms INTEGER, prompt TEXT, number TEXT, width INTEGER,
                   height INTEGER, token TEXT, state TEXT, completed_ms INTEGER);
CREATE TABLE secrets (kind TEXT, secret TEXT);
"""
SIZES = [(1024, 576), (768, 576), (576, 768), (576, 576)]
Row = tuple[Any, Any, Any, Any, Any, Any, Any, Any]


def token(i: int) -> str:
    return f"{i:032x}"


def job_row(
    i: int,
    created_ms: int,
    state: str = "new",
    number: str = "2",
    size: tuple[int, int] = (768, 576),
    prompt: str = "",
    completed_ms: int | None = None,
) -> Row:
    text = prompt or f"An apple on a wooden table, magazine photo {i}"
    return (created_ms, text, number, size[0], size[1], token(i), state, completed_ms)


def legacy_db(path: Path, rows: Iterable[Row], secrets: Iterable[tuple[str, str]] = ()) -> Path:
    with sqlite3.connect(path) as db:
        db.executescript(LEGACY_SCHEMA)
        db.executemany("INSERT INTO jobs VALUES (?, ?, ?, ?, ?, ?, ?, ?)", rows)
        db.executemany("INSERT INTO secrets VALUES (?, ?)", secrets)
    db.close()
    return path


def original_status(path: Path, tok: str) -> tuple[str, int, int]:
    """(State, created_ms, QueueLength) as the original service computes them."""
    with sqlite3.connect(path) as db:
        state, created = db.execute(
            "SELECT state, created_ms FROM jobs WHERE token = ?", (tok,)
        ).fetchone()
        (queue_length,) = db.execute(
            "SELECT count(*) FROM jobs WHERE created_ms < ? AND state != 'complete'", (created,)
        ).fetchone()
    db.close()
    return state, created, queue_length


async def import_file(path: Path, queue: Queue | None) -> ImportReport:
    db = open_legacy_db(path)
    try:
        return await import_rows(iter_rows(db), queue, batch_size=7)
    finally:
        db.close()


async def redis_now_ms(redis: Redis) -> int:
    seconds, micros = await redis.time()
    return int(seconds) * 1000 + int(micros) // 1000


def mixed_rows(now: int, count: int = 60, seed: int = 5) -> list[Row]:
    """Jobs of every state, with ties in creation time, as a busy original holds them."""
    rand = random.Random(seed)
    rows = []
    for i in range(count):
        state = rand.choice(["new", "new", "pending", "complete"])
        created = now - 3_600_000 + rand.randrange(0, 40) * 1000  # many equal times
        completed = created + 5000 if state == "complete" else None
        number = str(rand.randint(1, 16))
        rows.append(job_row(i, created, state, number, rand.choice(SIZES), "", completed))
    return rows


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


# The command itself: exit codes, refusals, the secrets it prints.

SECRETS = [
    ("hcaptcha_secret", "0x8f2c secret with 'quotes' and $dollars"),
    ("hcaptcha_sitekey", "10000000-ffff-ffff-ffff-000000000001"),
    ("backend_secret", "backend-s3cret"),
]


@pytest.fixture
def engine_env(
    redis_engine: EmbeddedRedis, prefix: str, monkeypatch: pytest.MonkeyPatch
) -> BrokerSettings:
    for name in ("SDQ_BACKEND_SECRETS", "SDQ_HCAPTCHA_SECRET", "SDQ_HCAPTCHA_SITEKEY"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("SDQ_REDIS_URL", redis_engine.url)
    monkeypatch.setenv("SDQ_KEY_PREFIX", prefix)
    return BrokerSettings()


def run_command(capsys: pytest.CaptureFixture[str], *args: str) -> tuple[int, str, str]:
    code = main(["import-sqlite", *args])
    captured = capsys.readouterr()
    return code, captured.out, captured.err


def test_import_command_prints_secrets_as_the_settings_the_api_reads(
    engine_env: BrokerSettings,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
    caplog: pytest.LogCaptureFixture,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    path = legacy_db(tmp_path / "queue.db", [job_row(1, 1_700_000_000_000)], SECRETS)

    code, out, err = run_command(capsys, str(path))

    assert code == 0
    for line in out.splitlines():
        if not line.startswith("#"):
            name, _, value = line.partition("=")
            (unquoted,) = shlex.split(value)
            monkeypatch.setenv(name, unquoted)
    api = ApiSettings()
    assert api.hcaptcha_secret is not None
    assert api.hcaptcha_secret.get_secret_value() == SECRETS[0][1]
    assert api.hcaptcha_sitekey == SECRETS[1][1]
    assert api.all_backend_secrets() == [SECRETS[2][1]]
    assert "imported" in err and "new" in err
    for _, secret in SECRETS:
        assert secret not in err
        assert all(secret not in record.getMessage() for record in caplog.records)


def test_import_command_names_the_secrets_it_could_not_find(
    engine_env: BrokerSettings, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path = legacy_db(tmp_path / "queue.db", [], [("hcaptcha_secret", ""), ("backend_secret", "b")])

    code, out, _ = run_command(capsys, str(path))

    assert code == 0
    assert "# hcaptcha_secret is missing or empty in the database" in out
    assert "set SDQ_HCAPTCHA_SITEKEY yourself" in out
    assert "SDQ_BACKEND_SECRETS=b\n" in out


def test_import_command_imports_and_a_second_run_finds_everything_present(
    engine_env: BrokerSettings, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    now_ms = int(time.time() * 1000)
    rows = [job_row(1, now_ms - 5000, "new"), job_row(2, now_ms - 4000, "pending")]
    path = legacy_db(tmp_path / "queue.db", rows, SECRETS)

    first = run_command(capsys, str(path), "--no-secrets")
    second = run_command(capsys, str(path), "--no-secrets")

    assert first[0] == second[0] == 0
    assert first[1] == second[1] == ""
    client = sync_redis.Redis.from_url(engine_env.redis_url.get_secret_value())
    keys = QueueKeys(engine_env.key_prefix)
    assert client.zcard(keys.active) == 2
    client.close()
    totals = [line.split() for line in (first[2] + second[2]).splitlines() if "total" in line]
    header = ["imported", "present", "expired", "skipped"]
    assert [dict(zip(header, map(int, t[1:]), strict=True)) for t in totals] == [
        {"imported": 2, "present": 0, "expired": 0, "skipped": 0},
        {"imported": 0, "present": 2, "expired": 0, "skipped": 0},
    ]


def test_import_secrets_take_the_first_row_of_each_kind_and_never_split_a_secret() -> None:
    lines = secret_lines(
        [
            ("backend_secret", "first"),
            ("backend_secret", "second"),
            ("hcaptcha_secret", "has,comma"),
            ("hcaptcha_sitekey", "key,with,commas"),
            ("smtp_password", "not ours"),
        ]
    )

    assert "SDQ_BACKEND_SECRETS=first" in lines
    assert "SDQ_HCAPTCHA_SECRET=has,comma" in lines
    assert "SDQ_HCAPTCHA_SITEKEY=key,with,commas" in lines
    assert "# 1 more row(s) of kind 'backend_secret' ignored (the first row counts)" in lines
    assert not any("second" in line or "not ours" in line for line in lines)
    comma = secret_lines([("backend_secret", "a,b")])
    assert not any("a,b" in line for line in comma)
    assert any("SDQ_BACKEND_SECRETS_FILE" in line for line in comma)


def test_import_command_refuses_a_batch_size_below_one(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path = legacy_db(tmp_path / "queue.db", [])

    code, _, err = run_command(capsys, str(path), "--batch-size", "0")

    assert code == 2 and "--batch-size" in err


@pytest.mark.parametrize(
    ("schema", "message"),
    [
        (
            "CREATE TABLE jobs (created_ms, prompt, number, width, height, token, state);"
            "CREATE TABLE secrets (kind, secret);",
            "table 'jobs' lacks column(s) completed_ms",
        ),
        (
            "CREATE TABLE jobs (created_ms, prompt, number, width, height, token, state,"
            " completed_ms);",
            "no table 'secrets'",
        ),
        ("CREATE TABLE tasks (id INTEGER PRIMARY KEY);", "no table 'jobs'"),
    ],
)
def test_import_command_refuses_a_database_with_another_schema(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], schema: str, message: str
) -> None:
    path = tmp_path / "other.db"
    with sqlite3.connect(path) as db:
        db.executescript(schema)
    db.close()

    code, out, err = run_command(capsys, str(path))

    assert code == 2
    assert message in err and "not the original service's database" in err
    assert out == ""


@pytest.mark.parametrize("content", [b"token,state\nabc,new\n", b""])
def test_import_command_refuses_a_file_that_is_not_sqlite(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], content: bytes
) -> None:
    path = tmp_path / "jobs.csv"
    path.write_bytes(content)

    code, out, err = run_command(capsys, str(path))

    assert code == 2 and out == ""
    assert "refused" in err and str(path) in err


def test_import_command_refuses_a_missing_file(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    code, _, err = run_command(capsys, str(tmp_path / "nope.db"))

    assert code == 2 and "no such file" in err


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
