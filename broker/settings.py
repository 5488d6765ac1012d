"""Settings every process of the queue shares: where Redis is and how jobs live.

The API's and the worker's settings extend this class, so each process reads
one settings object from the environment (prefix `SDQ_`).
"""

from __future__ import annotations

from typing import Annotated, Self, TypeVar
from urllib.parse import urlsplit

from pydantic import BeforeValidator, Field, SecretStr, model_validator
from pydantic_settings import BaseSettings, NoDecode, SettingsConfigDict

from broker.fair import Scheduling

T = TypeVar("T")


def split_commas(value: object) -> object:
    """`a, b,c` from the environment -> ['a', 'b', 'c']; lists pass through."""
    if isinstance(value, str):
        return [part.strip() for part in value.split(",") if part.strip()]
    return value


# A list read from one comma-separated environment variable (not JSON).
CommaSeparated = Annotated[list[T], NoDecode, BeforeValidator(split_commas)]


class BrokerSettings(BaseSettings):
    # Errors never echo the input: it holds the secrets.
    model_config = SettingsConfigDict(
        env_prefix="SDQ_", extra="ignore", frozen=True, hide_input_in_errors=True
    )

    redis_url: SecretStr = SecretStr("redis://127.0.0.1:6379/0")
    redis_sentinels: CommaSeparated[str] = Field(default_factory=list)
    redis_sentinel_service: str = "mymaster"
    redis_sentinel_password: SecretStr | None = None  # the sentinels' own, if they have one
    redis_cluster: bool = False  # SDQ_REDIS_URL names startup nodes of a Redis Cluster
    redis_timeout_s: float = Field(default=2.0, gt=0)
    key_prefix: str = Field(default="sdq", min_length=1, pattern=r"^[^{}\s]+$")
    reservation_ms: int = Field(default=10_000, ge=0)
    lease_base_ms: int = Field(default=60_000, ge=1_000)
    lease_per_megapixel_ms: int = Field(default=30_000, ge=0)
    worker_lease_ms: int = Field(default=30_000, ge=1_000)
    max_attempts: int = Field(default=3, ge=1)
    retention_s: int = Field(default=7 * 24 * 3600, ge=1)
    sweep_limit: int = Field(default=100, ge=1)
    # how new jobs are queued (broker/fair.py); read where jobs are added (the API)
    scheduling: Scheduling = Scheduling.FIFO

    @model_validator(mode="after")
    def _one_topology(self) -> Self:
        if self.redis_cluster and self.redis_sentinels:
            raise ValueError(
                "SDQ_REDIS_CLUSTER and SDQ_REDIS_SENTINELS exclude each other "
                "(a cluster finds its own primaries)"
            )
        if self.redis_cluster:
            path = urlsplit(self.redis_url.get_secret_value()).path.strip("/")
            if path not in ("", "0"):
                raise ValueError("SDQ_REDIS_CLUSTER: a Redis Cluster has only database 0")
        return self

    @property
    def retention_ms(self) -> int:
        return self.retention_s * 1000
