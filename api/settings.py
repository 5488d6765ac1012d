"""The API process's settings: one object, read from `SDQ_*` environment variables.

Unsafe combinations are refused at start-up, not discovered in production.
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Self

from pydantic import Field, SecretStr, field_validator, model_validator
from pydantic_settings import NoDecode

from broker.settings import BrokerSettings

HCAPTCHA_VERIFY_URL = "https://api.hcaptcha.com/siteverify"


class ApiSettings(BrokerSettings):
    host: str = "0.0.0.0"  # noqa: S104 - a service, listens like the original
    port: int = Field(default=9090, ge=1, le=65535)
    workers: int = Field(default=1, ge=1)

    backend_secrets: Annotated[list[SecretStr], NoDecode] = Field(default_factory=list)
    backend_secrets_file: Path | None = None

    hcaptcha_secret: SecretStr | None = None
    hcaptcha_sitekey: str | None = None
    hcaptcha_verify_url: str = HCAPTCHA_VERIFY_URL
    hcaptcha_timeout_s: float = Field(default=5.0, gt=0)
    insecure_skip_captcha: bool = False

    sweep_interval_s: float = Field(default=5.0, gt=0)
    access_log: bool = True
    log_json: bool = False
    images_dir: Path | None = None

    @field_validator("backend_secrets", mode="before")
    @classmethod
    def _split_secrets(cls, value: object) -> object:
        if isinstance(value, str):
            return [part.strip() for part in value.split(",") if part.strip()]
        return value

    @model_validator(mode="after")
    def _refuse_unsafe(self) -> Self:
        if not self.all_backend_secrets():
            raise ValueError(
                "no backend secret: set SDQ_BACKEND_SECRETS (comma-separated) "
                "or SDQ_BACKEND_SECRETS_FILE (one per line)"
            )
        if self.hcaptcha_secret is None and not self.insecure_skip_captcha:
            raise ValueError(
                "no hCaptcha secret: set SDQ_HCAPTCHA_SECRET, or SDQ_INSECURE_SKIP_CAPTCHA=true "
                "to accept any captcha (demo and tests only)"
            )
        return self

    def all_backend_secrets(self) -> list[str]:
        secrets = [secret.get_secret_value() for secret in self.backend_secrets]
        if self.backend_secrets_file is not None:
            lines = self.backend_secrets_file.read_text(encoding="utf-8").splitlines()
            secrets += [line.strip() for line in lines if line.strip()]
        return secrets
