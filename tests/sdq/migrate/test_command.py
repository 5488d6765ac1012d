"""`sdq import-sqlite` the command: exit codes, refusals, and the secrets it prints."""

from __future__ import annotations

import shlex
import sqlite3
import time
from pathlib import Path

import pytest
import redis as sync_redis

from api.settings import ApiSettings
from broker.keys import QueueKeys
from broker.settings import BrokerSettings
from sdq.cli import main
from sdq.embedded_redis import EmbeddedRedis
from sdq.migrate.command import secret_lines
from tests.sdq.migrate.support import job_row, legacy_db

SECRETS = [
    ("hcaptcha_secret", "0x8f2c7e41d9a3b56c0f1e2d3c4b5a69788796a5b4"),
    ("hcaptcha_sitekey", "10000000-ffff-ffff-ffff-000000000001"),
    ("backend_secret", "backend-s3cret/of+the=original.service"),
]
LONG = "-of-the-original-service"  # makes a test secret long enough for the API


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
            assert shlex.split(value) == [value]  # read the same with or without a shell
            monkeypatch.setenv(name, value)
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
    secrets = [("hcaptcha_secret", ""), ("backend_secret", "b" + LONG)]
    path = legacy_db(tmp_path / "queue.db", [], secrets)

    code, out, _ = run_command(capsys, str(path))

    assert code == 0
    assert "# hcaptcha_secret is missing or empty in the database" in out
    assert "set SDQ_HCAPTCHA_SITEKEY yourself" in out
    assert f"SDQ_BACKEND_SECRETS=b{LONG}\n" in out


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
            ("backend_secret", "first" + LONG),
            ("backend_secret", "second" + LONG),
            ("hcaptcha_secret", "has,comma" + LONG),
            ("hcaptcha_sitekey", "key,with,commas"),
            ("smtp_password", "not ours"),
        ]
    )

    assert f"SDQ_BACKEND_SECRETS=first{LONG}" in lines
    assert f"SDQ_HCAPTCHA_SECRET=has,comma{LONG}" in lines
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


@pytest.mark.parametrize(
    "secret",
    [
        "x\nSDQ_INSECURE_SKIP_CAPTCHA=true",
        "x\rSDQ_INSECURE_SKIP_CAPTCHA=true" + LONG,
        "it's 'quoted' and $expanded" + LONG,
        'say "hi" # not a comment' + LONG,
        "back\\slash" + LONG,
    ],
)
def test_import_never_prints_a_secret_an_env_file_could_read_as_another_setting(
    secret: str,
) -> None:
    """A secret with a line break once printed a second setting that a dotenv reader
    took (SDQ_INSECURE_SKIP_CAPTCHA=true): such values become a comment."""
    lines = secret_lines([("backend_secret", secret), ("hcaptcha_secret", secret)])
    settings = [line for line in lines if not line.startswith("#")]
    assert settings == []
    assert all("\n" not in line and "\r" not in line for line in lines)
    assert any("set SDQ_BACKEND_SECRETS yourself" in line for line in lines)
    assert any("set SDQ_HCAPTCHA_SECRET yourself" in line for line in lines)


def test_import_prints_no_secret_the_api_would_refuse_and_says_why() -> None:
    lines = secret_lines([("backend_secret", "short"), ("hcaptcha_sitekey", "short-is-fine")])
    assert not any(line.startswith("SDQ_BACKEND_SECRETS=") for line in lines)
    assert any("shorter than 24" in line and "SDQ_BACKEND_SECRETS" in line for line in lines)
    assert "SDQ_HCAPTCHA_SITEKEY=short-is-fine" in lines  # a site key is public


def test_import_command_refuses_a_view_in_place_of_a_table_instead_of_hanging(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """A recursive VIEW named `jobs` once made the import read forever."""
    path = tmp_path / "queue.db"
    with sqlite3.connect(path) as db:
        db.executescript(
            "CREATE TABLE secrets (kind TEXT, secret TEXT);"
            "CREATE VIEW jobs AS WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM n)"
            " SELECT i AS created_ms, 'p' AS prompt, '1' AS number, 768 AS width, 576 AS height,"
            " printf('%032x', i) AS token, 'new' AS state, NULL AS completed_ms FROM n;"
        )
    started = time.monotonic()
    code, _, err = run_command(capsys, str(path), "--dry-run")
    assert code == 2
    assert "'jobs' is a view, not a table" in err
    assert time.monotonic() - started < 5
