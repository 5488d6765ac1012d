"""Reads the original service's SQLite database: its schema, its jobs, its secrets.

The original (Go + SQLite) keeps `jobs(created_ms, prompt, number, width, height,
token, state, completed_ms)`, with `number` stored as text, and `secrets(kind,
secret)`. Rows are checked one by one against the contract's rules (api/legacy/rules.py, the
same checks /addJob makes): a bad row is reported and skipped, never fatal, so one
odd row cannot block a migration. Only a file that is not this database at all
(another schema, not SQLite, unreadable) is refused, with `LegacyDatabaseError`.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Iterator
from contextlib import closing
from dataclasses import dataclass
from pathlib import Path

from api.legacy.rules import (
    MAX_NUMBER,
    MIN_NUMBER,
    RESOLUTIONS,
    check_prompt,
    parse_go_int,
)
from broker.job import ImportedJob
from broker.states import JobState
from broker.tokens import is_token

JOB_COLUMNS = (
    "created_ms",
    "prompt",
    "number",
    "width",
    "height",
    "token",
    "state",
    "completed_ms",
)
SECRET_COLUMNS = ("kind", "secret")
LEGACY_STATES = frozenset({JobState.NEW, JobState.PENDING, JobState.COMPLETE})
SIZES = frozenset(RESOLUTIONS.values())

# Rows in creation order; equal times keep the original's insertion order (rowid),
# which is the FIFO order its /getNextJob showed.
_SELECT_JOBS = (
    "SELECT rowid, created_ms, prompt, number, width, height, token, state, completed_ms "
    "FROM jobs ORDER BY CAST(created_ms AS INTEGER), rowid"
)


class LegacyDatabaseError(Exception):
    """The file is not the original service's database: nothing can be imported."""


@dataclass(frozen=True, slots=True)
class BadRow:
    """A row that cannot become a job; `token` is shown only when it looks like one."""

    rowid: int
    token: str
    state: str
    reason: str


def open_legacy_db(path: Path) -> sqlite3.Connection:
    """Opens read-only and checks the schema; raises LegacyDatabaseError with the reason."""
    if not path.is_file():
        raise LegacyDatabaseError(f"{path}: no such file")
    try:
        db = sqlite3.connect(f"{path.resolve().as_uri()}?mode=ro", uri=True)
    except sqlite3.Error as exc:
        raise LegacyDatabaseError(f"{path}: cannot open: {exc}") from exc
    # Bytes, decoded per field: one row with invalid UTF-8 must not stop the import.
    db.text_factory = bytes
    try:
        _check_schema(db, path)
    except BaseException:
        db.close()
        raise
    return db


def _check_schema(db: sqlite3.Connection, path: Path) -> None:
    for table, wanted in (("jobs", JOB_COLUMNS), ("secrets", SECRET_COLUMNS)):
        try:
            kind = db.execute("SELECT type FROM sqlite_master WHERE name = ?", (table,)).fetchone()
            rows = db.execute(f"PRAGMA table_info({table})").fetchall()
        except sqlite3.DatabaseError as exc:
            raise LegacyDatabaseError(f"{path}: not an SQLite database ({exc})") from exc
        if kind is not None and _text(kind[0]) != "table":
            # A view can be anything, a recursive one never ends: only the original's tables.
            raise LegacyDatabaseError(
                f"{path}: not the original service's database: '{table}' is a "
                f"{_text(kind[0])}, not a table"
            )
        if not rows:
            raise LegacyDatabaseError(
                f"{path}: not the original service's database: no table '{table}'"
            )
        present = {_text(row[1]) for row in rows}
        missing = [column for column in wanted if column not in present]
        if missing:
            raise LegacyDatabaseError(
                f"{path}: not the original service's database: table '{table}' "
                f"lacks column(s) {', '.join(missing)}"
            )


def iter_rows(db: sqlite3.Connection) -> Iterator[ImportedJob | BadRow]:
    """Every row of `jobs`, oldest first, as a job or as the reason it is not one."""
    try:
        with closing(db.execute(_SELECT_JOBS)) as cursor:
            for rowid, *row in cursor:
                yield parse_row(rowid, *row)
    except sqlite3.DatabaseError as exc:
        raise LegacyDatabaseError(f"cannot read table 'jobs': {exc}") from exc


def read_secrets(db: sqlite3.Connection) -> list[tuple[str, str]]:
    """(kind, secret) pairs in table order; a NULL or undecodable secret reads as ''."""
    try:
        rows = db.execute("SELECT kind, secret FROM secrets ORDER BY rowid").fetchall()
    except sqlite3.DatabaseError as exc:
        raise LegacyDatabaseError(f"cannot read table 'secrets': {exc}") from exc
    return [(_text(kind) or "", _text(secret) or "") for kind, secret in rows]


def parse_row(
    rowid: int,
    created_ms: object,
    prompt: object,
    number: object,
    width: object,
    height: object,
    token: object,
    state: object,
    completed_ms: object,
) -> ImportedJob | BadRow:
    """Checks one row; the first failed rule is the reason it is skipped."""
    token_text = _text(token) or ""
    state_text = _text(state) or ""
    shown = token_text if is_token(token_text) else "?"

    def bad(reason: str) -> BadRow:
        return BadRow(rowid, shown, state_text if state_text in LEGACY_STATES else "?", reason)

    if shown == "?":
        return bad("token is not 32 lower-case hex characters")
    if state_text not in LEGACY_STATES:
        return bad(f"unknown state {state_text[:20]!r}")
    created = _integer(created_ms)
    if created is None or created <= 0:
        return bad("created_ms is not a positive integer")
    completed = _integer(completed_ms)
    if completed_ms is not None and completed is None:
        return bad("completed_ms is not an integer")
    count = _integer(number)
    if count is None:
        return bad("number is not an integer")
    if not MIN_NUMBER <= count <= MAX_NUMBER:
        return bad(f"number {count} out of range {MIN_NUMBER}..{MAX_NUMBER}")
    size = (_integer(width) or 0, _integer(height) or 0)
    if size not in SIZES:
        return bad("width x height is not one of 1024x576, 768x576, 576x768, 576x576")
    text, problem = _check_prompt(prompt)
    if problem:
        return bad(problem)
    w, h = size
    return ImportedJob(token_text, text, count, w, h, JobState(state_text), created, completed)


def _check_prompt(value: object) -> tuple[str, str]:
    """(prompt, '') or ('', why it cannot be served), by /addJob's prompt rules. The
    original stored prompts after transliteration, so a stored prompt that changes
    when transliterated again (it still holds ä, é, ...) was not written by it."""
    prompt = _text(value)
    if prompt is None:
        return "", "prompt is missing or not UTF-8 text"
    checked, errors = check_prompt(prompt)
    if errors:
        return "", f"prompt: {', '.join(error.message for error in errors)}"
    if checked != prompt:
        return "", "prompt contains a character outside printable ASCII"
    return prompt, ""


def _text(value: object) -> str | None:
    if isinstance(value, bytes):
        try:
            return value.decode("utf-8")
        except UnicodeDecodeError:
            return None
    return value if isinstance(value, str) else None


def _integer(value: object) -> int | None:
    """An INTEGER, or text as Go's strconv.ParseInt(s, 10, 64) reads it (e.g. '+3', '03')."""
    if isinstance(value, int) and not isinstance(value, bool):
        return value
    text = _text(value)
    return None if text is None else parse_go_int(text)
