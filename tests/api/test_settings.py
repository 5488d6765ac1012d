"""The API refuses to start with unsafe secrets (issue: placeholder and short backend
secrets were accepted). Each finding as an operator would make it."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
from pydantic import ValidationError

from api.secret_policy import MIN_LENGTH, PLACEHOLDERS, secret_problem
from api.settings import ApiSettings

ROOT = Path(__file__).resolve().parent.parent.parent
GOOD = "x7Rk2vQ9-backend-secret-long-enough"
CAPTCHA = "0x5d1f0c09c8f84e5dbd4d7e1f0a2b3c4d"
OLD_EXAMPLE = "change-me-to-a-long-random-string"  # what .env.example used to ship


def settings(**values: object) -> ApiSettings:
    values.setdefault("backend_secrets", GOOD)
    values.setdefault("hcaptcha_secret", CAPTCHA)
    return ApiSettings(_env_file=None, **values)  # type: ignore[call-arg]


@pytest.mark.parametrize(
    "secret", ["x", "a" * (MIN_LENGTH - 1), OLD_EXAMPLE, "change-me", "Change-Me-" + "q" * 30]
)
def test_a_short_or_placeholder_backend_secret_is_refused(secret: str) -> None:
    with pytest.raises(ValidationError) as refused:
        settings(backend_secrets=secret)
    assert "backend secret 1:" in str(refused.value)
    assert secret not in str(refused.value)  # the reason never quotes the secret


def test_every_rotated_backend_secret_is_checked() -> None:
    with pytest.raises(ValidationError, match="backend secret 2: is shorter than 24"):
        settings(backend_secrets=f"{GOOD},short")


@pytest.mark.parametrize("secret", ["change-me", "too-short", OLD_EXAMPLE])
def test_a_short_or_placeholder_hcaptcha_secret_is_refused(secret: str) -> None:
    with pytest.raises(ValidationError, match="SDQ_HCAPTCHA_SECRET: is"):
        settings(hcaptcha_secret=secret)


def test_a_long_random_secret_is_accepted() -> None:
    assert settings().all_backend_secrets() == [GOOD]
    assert secret_problem(GOOD) is None


def env_example_values() -> dict[str, str]:
    values = {}
    for line in (ROOT / ".env.example").read_text(encoding="utf-8").splitlines():
        name, sep, value = line.partition("=")
        if sep and not name.startswith("#"):
            values[name.strip()] = value.strip()
    return values


def test_no_secret_in_env_example_would_start_the_api() -> None:
    """A forgotten secret fails closed: .env.example's values are empty or refused."""
    for name, value in env_example_values().items():
        if "SECRET" in name or "PASSWORD" in name:
            assert value == "" or secret_problem(value) is not None, name
    assert all(secret_problem(placeholder) for placeholder in PLACEHOLDERS)


def test_secrets_file_skips_blank_lines_and_comments(tmp_path: Path) -> None:
    path = tmp_path / "secrets"
    path.write_text(f"# rotated on 2026-11-30\n\n  {GOOD}  \n#{GOOD}-old\n", encoding="utf-8")
    assert settings(backend_secrets="", backend_secrets_file=path).all_backend_secrets() == [GOOD]


def test_a_comment_alone_in_the_secrets_file_is_no_secret(tmp_path: Path) -> None:
    path = tmp_path / "secrets"
    path.write_text(f"# {GOOD}\n", encoding="utf-8")
    with pytest.raises(ValidationError, match="no backend secret"):
        settings(backend_secrets="", backend_secrets_file=path)


def test_a_missing_secrets_file_stops_sdq_api_with_exit_2_not_a_traceback(tmp_path: Path) -> None:
    env = {k: v for k, v in os.environ.items() if not k.startswith("SDQ_")}
    env.update(
        SDQ_BACKEND_SECRETS_FILE=str(tmp_path / "missing"),
        SDQ_HCAPTCHA_SECRET=CAPTCHA,
    )
    done = subprocess.run(
        [sys.executable, "-m", "sdq", "api"], env=env, capture_output=True, text=True, timeout=60
    )
    assert done.returncode == 2
    assert "SDQ_BACKEND_SECRETS_FILE" in done.stderr and "cannot read it" in done.stderr
    assert "Traceback" not in done.stderr
