"""The API process's settings: one object, read from `SDQ_*` environment variables.

Unsafe combinations are refused at start-up, not discovered in production: a
missing, short or placeholder secret (api/secret_policy.py), captcha checks off
without saying so, an unreadable secrets file.
"""

from __future__ import annotations

from pathlib import Path
from typing import Self

from limits import parse_many
from pydantic import (
    Field,
    IPvAnyNetwork,
    PrivateAttr,
    SecretStr,
    ValidationInfo,
    field_validator,
    model_validator,
)

from api.legacy.rules import MAX_NUMBER
from api.secret_policy import secret_problem
from broker.settings import BrokerSettings, CommaSeparated

HCAPTCHA_VERIFY_URL = "https://api.hcaptcha.com/siteverify"


class ApiSettings(BrokerSettings):
    host: str = "0.0.0.0"  # noqa: S104 - a service, listens like the original
    port: int = Field(default=9090, ge=1, le=65535)
    workers: int = Field(default=1, ge=1)

    backend_secrets: CommaSeparated[SecretStr] = Field(default_factory=list)
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

    # abuse limits, proxies and metrics (docs/operations.md): /addJob per client address
    addjob_rate: str = ""  # `limits` syntax, e.g. "10/minute;100/hour"; "" = no limit
    max_open_jobs_per_client: int = Field(default=0, ge=0)  # new or pending jobs; 0 = no cap
    v2_read_rate: str = "120/minute;2000/hour"  # GET /v2/jobs/..., /v2/queue per client
    max_streams_per_client: int = Field(default=8, ge=0)  # open event streams; 0 = no cap
    backend_auth_failures: str = "10/minute;100/hour"  # wrong backend secrets per client
    max_images_per_client: int = Field(default=0, ge=0)  # images in those jobs; 0 = no cap
    max_wait_s: float = Field(default=0.0, ge=0)  # refuse a job estimated to wait longer; 0 = off
    trusted_proxies: CommaSeparated[IPvAnyNetwork] = Field(default_factory=list)
    ipv6_client_prefix: int = Field(default=64, ge=1, le=128)  # one client = one /64
    max_query_bytes: int = Field(default=16 * 1024, ge=1024)
    max_body_bytes: int = Field(default=64 * 1024, ge=1024)  # POST /v2/jobs, /backend/report
    # sdq api's HTTP server (sdq/http_protocol.py): a replica facing clients without nginx
    max_header_bytes: int = Field(default=64 * 1024, ge=8 * 1024)  # request line + headers
    header_timeout_s: float = Field(default=10.0, gt=0)  # to send them, from connect or last reply
    keep_alive_s: float = Field(default=5.0, gt=0)  # an idle kept-alive connection closes
    max_connections: int = Field(default=2048, ge=16)  # beyond it new requests get 503
    metrics: bool = True

    # v2 API: where complete jobs' images are (first that is set: a public base URL,
    # presigned GETs on a private S3 bucket, else /images/ when images_dir is set)
    image_base_url: str | None = Field(default=None, pattern=r"^https?://")
    s3_presign: bool = False
    s3_bucket: str | None = None
    s3_prefix: str = ""
    s3_region: str | None = None
    s3_endpoint_url: str | None = None
    s3_presign_s: int = Field(default=3600, ge=1, le=7 * 24 * 3600)
    # v2 API: ETAs, live workers, event streams
    worker_live_s: float = Field(default=30.0, gt=0)
    sse_poll_s: float = Field(default=1.0, gt=0)
    sse_keepalive_s: float = Field(default=15.0, gt=0)
    sse_max_s: float = Field(default=600.0, gt=0)

    @field_validator("max_images_per_client")
    @classmethod
    def _check_images_cap(cls, value: int) -> int:
        if 0 < value < MAX_NUMBER:
            raise ValueError(
                f"SDQ_MAX_IMAGES_PER_CLIENT: 0 (no cap) or at least {MAX_NUMBER}, "
                "the images of one job, or a client could never add the largest job"
            )
        return value

    @field_validator("addjob_rate", "v2_read_rate", "backend_auth_failures")
    @classmethod
    def _check_rate(cls, value: str, info: ValidationInfo) -> str:
        if value.strip():
            try:
                parse_many(value)
            except ValueError as exc:
                name = f"SDQ_{str(info.field_name).upper()}"
                raise ValueError(f'{name}: {exc} (e.g. "10/minute;100/hour")') from exc
        return value.strip()

    _file_secrets: list[str] = PrivateAttr(default_factory=list)

    @model_validator(mode="after")
    def _read_secrets_file(self) -> Self:
        """One secret per line; blank lines and `#` comments are skipped. Read once."""
        if self.backend_secrets_file is None:
            return self
        try:
            text = self.backend_secrets_file.read_text(encoding="utf-8")
        except (OSError, UnicodeDecodeError) as exc:
            raise ValueError(
                f"SDQ_BACKEND_SECRETS_FILE={self.backend_secrets_file}: cannot read it "
                f"({type(exc).__name__}: {getattr(exc, 'strerror', None) or exc})"
            ) from None
        lines = (line.strip() for line in text.splitlines())
        self._file_secrets = [line for line in lines if line and not line.startswith("#")]
        return self

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
        if self.s3_presign and not self.s3_bucket:
            raise ValueError("SDQ_S3_PRESIGN needs SDQ_S3_BUCKET (the private bucket to sign for)")
        for number, secret in enumerate(self.all_backend_secrets(), start=1):
            problem = secret_problem(secret)
            if problem:  # the value itself is never shown
                raise ValueError(f"backend secret {number}: {problem}")
        if self.hcaptcha_secret is not None:
            problem = secret_problem(self.hcaptcha_secret.get_secret_value())
            if problem:
                raise ValueError(f"SDQ_HCAPTCHA_SECRET: {problem}")
        return self

    def all_backend_secrets(self) -> list[str]:
        """SDQ_BACKEND_SECRETS, then the lines of SDQ_BACKEND_SECRETS_FILE."""
        return [s.get_secret_value() for s in self.backend_secrets] + self._file_secrets
