"""The worker process's settings: one object, read from `SDQ_*` environment variables."""

from __future__ import annotations

from pathlib import Path
from typing import Literal

from pydantic import Field, SecretStr

from broker.settings import BrokerSettings


class WorkerSettings(BrokerSettings):
    transport: Literal["http", "redis"] = "redis"
    renderer: Literal["diffusers", "test-pattern"] = "test-pattern"
    storage: Literal["local", "s3"] = "local"
    worker_id: str | None = None  # default: <hostname>-<pid>

    # http transport
    api_url: str = "http://127.0.0.1:9090"
    backend_secret: SecretStr | None = None  # default: the first of SDQ_BACKEND_SECRETS
    backend_secrets: list[SecretStr] = Field(default_factory=list)

    # local storage
    images_dir: Path = Path("sdq-data/images")

    # s3 storage
    s3_bucket: str | None = None
    s3_prefix: str = ""
    s3_region: str | None = None
    s3_endpoint_url: str | None = None

    # diffusers renderer
    model: str = "runwayml/stable-diffusion-v1-5"  # a model id or a local folder
    device: str | None = None  # default: cuda when available, else cpu
    batch_size: int = Field(default=4, ge=1)
    steps: int = Field(default=30, ge=1)
    guidance_scale: float = 7.5

    idle_poll_s: float = Field(default=5.0, gt=0)
