"""`sdq import-sqlite`: moves the original service's jobs into Redis, and its secrets
into the settings this service reads.

Jobs travel in batches, each batch one pipeline of import_job.lua calls (one round
trip), so 100,000 jobs take seconds. Every call is atomic and skips a token that
already exists, which makes the whole import idempotent: an interrupted import is
finished by running it again.

Output: the secrets, as `SDQ_*=value` lines, go to stdout only (for the operator
to redirect into an env file); the report and every error go to stderr. Nothing
here writes to a log.
"""

from __future__ import annotations

import asyncio
import re
import sys
import time
from collections import Counter
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from itertools import islice
from pathlib import Path
from typing import TextIO

from api.secret_policy import secret_problem
from broker.connection import create_redis
from broker.errors import StorageUnavailable
from broker.job import ImportedJob
from broker.queue import Queue
from broker.settings import BrokerSettings
from sdq.migrate.sqlite import (
    BadRow,
    LegacyDatabaseError,
    iter_rows,
    open_legacy_db,
    read_secrets,
)

STATE_ORDER = ("new", "pending", "complete")
OUTCOMES = ("imported", "present", "expired", "skipped")
DRY_RUN_OUTCOMES = ("valid", "skipped")
SECRET_SETTINGS = {
    "hcaptcha_secret": "SDQ_HCAPTCHA_SECRET",
    "hcaptcha_sitekey": "SDQ_HCAPTCHA_SITEKEY",
    "backend_secret": "SDQ_BACKEND_SECRETS",
}
BAD_ROWS_SHOWN = 20
_ENV_SAFE = re.compile(r"[A-Za-z0-9!%*+,./:=?@^_~-]+", re.ASCII)
EXIT_REFUSED = 2


@dataclass
class ImportReport:
    """Jobs per original state and outcome, and the rows that were skipped."""

    counts: dict[str, Counter[str]] = field(default_factory=dict)
    bad_rows: list[BadRow] = field(default_factory=list)

    def add(self, state: str, outcome: str, n: int = 1) -> None:
        self.counts.setdefault(state, Counter())[outcome] += n

    def total(self, outcome: str) -> int:
        return sum(counter[outcome] for counter in self.counts.values())


async def import_rows(
    rows: Iterable[ImportedJob | BadRow], queue: Queue | None, batch_size: int = 1000
) -> ImportReport:
    """Imports the valid rows batch by batch; with no queue, only checks them (dry run)."""
    report = ImportReport()
    for batch in _batches(rows, batch_size):
        jobs = [row for row in batch if isinstance(row, ImportedJob)]
        for bad in (row for row in batch if isinstance(row, BadRow)):
            report.bad_rows.append(bad)
            report.add(bad.state, "skipped")
        outcomes = ["valid"] * len(jobs) if queue is None else await queue.import_jobs(jobs)
        for job, outcome in zip(jobs, outcomes, strict=True):
            report.add(job.state.value, outcome)
    return report


def _batches(
    rows: Iterable[ImportedJob | BadRow], size: int
) -> Iterator[list[ImportedJob | BadRow]]:
    iterator = iter(rows)
    while batch := list(islice(iterator, size)):
        yield batch


def report_lines(report: ImportReport, *, dry_run: bool = False) -> list[str]:
    """The counts as a small table: one line per original state, then the total."""
    outcomes = DRY_RUN_OUTCOMES if dry_run else OUTCOMES
    states = [*STATE_ORDER, *(["?"] if "?" in report.counts else [])]
    lines = [f"{'state':<10}" + "".join(f"{name:>10}" for name in outcomes)]
    for state in states:
        counter = report.counts.get(state, Counter())
        lines.append(f"{state:<10}" + "".join(f"{counter[name]:>10}" for name in outcomes))
    lines.append(f"{'total':<10}" + "".join(f"{report.total(name):>10}" for name in outcomes))
    return lines


def bad_row_lines(bad_rows: list[BadRow], shown: int = BAD_ROWS_SHOWN) -> list[str]:
    lines = [
        f"skipped row {row.rowid} (token {row.token}, state {row.state}): {row.reason}"
        for row in bad_rows[:shown]
    ]
    if len(bad_rows) > shown:
        lines.append(f"... and {len(bad_rows) - shown} more skipped rows")
    return lines


def secret_lines(secrets: list[tuple[str, str]]) -> list[str]:
    """The original's secrets as the `SDQ_*` settings this service reads.

    The first row of each kind counts (the original reads one secret per kind); a
    kind that is missing or empty becomes a comment naming the setting to fill in.
    A value is printed only as `NAME=value` with characters that every env-file
    reader (shell, docker compose, dotenv) reads the same way and unquoted: one with
    quotes, spaces, `$`, `#`, backslashes or line breaks could be read as more
    than one setting, so it becomes a comment asking the operator to set it. A
    secret the API would refuse (api/secret_policy.py) is not printed either."""
    first: dict[str, str] = {}
    extra: Counter[str] = Counter()
    for kind, secret in secrets:
        if kind in first:
            extra[kind] += 1
        else:
            first[kind] = secret
    lines = ["# Settings from the original database. These are secrets: keep them private."]
    for kind, setting in SECRET_SETTINGS.items():
        value = first.get(kind, "").strip()
        if not value:
            lines.append(f"# {kind} is missing or empty in the database: set {setting} yourself")
        elif setting == "SDQ_BACKEND_SECRETS" and "," in value:
            lines.append(
                f"# the {kind} contains ',': write it as one line of the file named by "
                "SDQ_BACKEND_SECRETS_FILE instead"
            )
        elif not _ENV_SAFE.fullmatch(value):
            lines.append(
                f"# the {kind} holds characters an env file cannot carry unquoted (spaces, "
                f"quotes, $, #, \\, line breaks): set {setting} yourself"
            )
        elif kind != "hcaptcha_sitekey" and (problem := secret_problem(value)):
            lines.append(
                f"# the {kind} {problem}; the API refuses it: set {setting} to a new one "
                "(and give it to the backends)"
            )
        else:
            lines.append(f"{setting}={value}")
        if extra[kind]:
            lines.append(
                f"# {extra[kind]} more row(s) of kind {kind!r} ignored (the first row counts)"
            )
    lines.extend(
        f"# unknown secret kind {kind!r} ignored" for kind in first if kind not in SECRET_SETTINGS
    )
    return lines


def import_sqlite(
    path: Path,
    settings: BrokerSettings,
    *,
    dry_run: bool = False,
    batch_size: int = 1000,
    show_secrets: bool = True,
    out: TextIO | None = None,
    err: TextIO | None = None,
) -> int:
    """The command: 0 when done (skipped rows are reported, not fatal), 2 when the file
    is not the original's database, 1 when Redis fails (running it again resumes)."""
    out = out or sys.stdout
    err = err or sys.stderr
    if batch_size < 1:
        print(f"sdq import-sqlite: --batch-size must be at least 1, not {batch_size}", file=err)
        return EXIT_REFUSED
    started = time.perf_counter()
    try:
        db = open_legacy_db(path)
    except LegacyDatabaseError as exc:
        print(f"sdq import-sqlite: refused: {exc}", file=err)
        return EXIT_REFUSED
    try:
        secrets = read_secrets(db)
        report = asyncio.run(_run(iter_rows(db), settings, dry_run, batch_size))
    except LegacyDatabaseError as exc:
        print(f"sdq import-sqlite: refused: {exc}", file=err)
        return EXIT_REFUSED
    except StorageUnavailable as exc:
        print(
            f"sdq import-sqlite: Redis failed ({exc}); nothing is lost: run the same "
            "command again to finish the import",
            file=err,
        )
        return 1
    finally:
        db.close()
    seconds = time.perf_counter() - started
    for line in bad_row_lines(report.bad_rows):
        print(line, file=err)
    for line in report_lines(report, dry_run=dry_run):
        print(line, file=err)
    print(f"{'checked' if dry_run else 'finished'} {path} in {seconds:.1f} s", file=err)
    if show_secrets:
        for line in secret_lines(secrets):
            print(line, file=out)
    return 0


async def _run(
    rows: Iterable[ImportedJob | BadRow], settings: BrokerSettings, dry_run: bool, batch_size: int
) -> ImportReport:
    if dry_run:
        return await import_rows(rows, None, batch_size)
    redis = create_redis(settings)
    try:
        queue = Queue(redis, settings)
        await queue.ping()
        return await import_rows(rows, queue, batch_size)
    finally:
        await redis.aclose()
