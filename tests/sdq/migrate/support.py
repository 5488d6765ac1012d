"""Helpers of the import tests: databases built with the original's schema, and what
the original itself would have answered from such a file."""

from __future__ import annotations

import random
import sqlite3
from collections.abc import Iterable
from pathlib import Path
from typing import Any

from redis.asyncio import Redis

from broker.queue import Queue
from sdq.migrate.command import ImportReport, import_rows
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
