"""The worker process's settings: one object, read from `SDQ_*` environment variables."""

from __future__ import annotations

import os
import socket
from pathlib import Path
from typing import Literal, Self
from urllib.parse import urlsplit

from pydantic import Field, SecretStr, field_validator, model_validator

from broker.settings import BrokerSettings, CommaSeparated


class WorkerSettings(BrokerSettings):
    transport: Literal["http", "redis"] = "redis"
    renderer: Literal["diffusers", "test-pattern"] = "test-pattern"
    storage: Literal["local", "s3"] = "local"
    worker_id: str | None = None  # default: <hostname>-<pid>

    # http transport
    api_url: str = "http://127.0.0.1:9090"
    backend_secret: SecretStr | None = None  # default: the first of SDQ_BACKEND_SECRETS
    backend_secrets: CommaSeparated[SecretStr] = Field(default_factory=list)
    http_timeout_s: float = Field(default=10.0, gt=0)
    http_poll_s: float = Field(default=1.0, gt=0)  # idle poll of /getNextJob

    # local storage
    images_dir: Path = Path("sdq-data/images")

    # s3 storage
    s3_bucket: str | None = None
    s3_prefix: str = ""
    s3_region: str | None = None
    s3_endpoint_url: str | None = None

    # diffusers renderer (docs/diffusers.md says why each default)
    model: str = "stable-diffusion-v1-5/stable-diffusion-v1-5"  # a model id or a local folder
    device: str | None = None  # default: cuda when available, else cpu
    batch_size: int = Field(default=4, ge=1)
    steps: int = Field(default=25, ge=1)  # DPM-Solver++ 2M needs 20-25 where DDIM needed 50
    scheduler: Literal["dpmpp-2m-karras", "dpmpp-2m", "euler-a", "ddim", "model"] = (
        "dpmpp-2m-karras"
    )
    guidance_scale: float = 7.5
    dtype: Literal["auto", "float16", "bfloat16", "float32"] = "auto"  # auto: fp16 on CUDA
    safety_checker: bool = True  # keep the model's NSFW checker, if it has one
    attention_slicing: bool = False  # less GPU memory per batch, somewhat slower
    sdpa: bool = True  # PyTorch's fused scaled-dot-product attention (flash/mem-efficient)
    channels_last: bool = True  # NHWC memory layout of the UNet and VAE (faster convolutions)
    fuse_qkv: bool = True  # one matmul for each attention's Q, K, V projections
    tf32: bool = True  # TF32 tensor cores for float32 matmuls and convolutions (Ampere+)
    compile: Literal[
        "off", "default", "reduce-overhead", "max-autotune", "max-autotune-no-cudagraphs"
    ] = "off"  # torch.compile the UNet and VAE decoder, warmed up before the first claim

    # test-pattern renderer: simulated render time, so a demo shows pending and progress
    test_pattern_ms_per_image: int = Field(default=0, ge=0)

    # the loop
    idle_poll_s: float = Field(default=5.0, gt=0)  # fallback poll of an idle direct worker
    retry_base_s: float = Field(default=0.2, gt=0)  # first pause when Redis/the API is down
    retry_cap_s: float = Field(default=15.0, gt=0)  # longest pause
    store_attempts: int = Field(default=3, ge=1)  # tries per image before the job is released
    report_interval_s: float = Field(default=5.0, gt=0)  # render times and liveness
    pipeline: bool = True  # encode/upload beside the render, claim one job ahead
    encode_threads: int = Field(default=4, ge=1, le=64)  # the encode/upload pool
    png_compress_level: int = Field(default=4, ge=0, le=9)  # zlib level (bench.png)
    preview_interval_s: float = Field(default=1.0, ge=0)  # live previews; 0 = none
    step_timeout_s: float = Field(default=60.0, ge=0)  # watchdog of a denoising step; 0 = off

    @field_validator("api_url")
    @classmethod
    def _http_url(cls, value: str) -> str:
        parts = urlsplit(value)
        if parts.scheme not in ("http", "https") or not parts.hostname:
            raise ValueError(f"SDQ_API_URL must be http(s)://host[:port], not {value!r}")
        return value

    @model_validator(mode="after")
    def _refuse_incomplete(self) -> Self:
        if self.transport == "http" and self.secret() == "":
            raise ValueError(
                "the http transport needs a backend secret: set SDQ_BACKEND_SECRET "
                "(or SDQ_BACKEND_SECRETS, whose first entry is used)"
            )
        if self.storage == "s3" and not self.s3_bucket:
            raise ValueError("the s3 storage needs SDQ_S3_BUCKET")
        if self.retry_cap_s < self.retry_base_s:
            raise ValueError("SDQ_RETRY_CAP_S must be at least SDQ_RETRY_BASE_S")
        return self

    def secret(self) -> str:
        """The secret this worker presents to the API ('' when none is configured)."""
        if self.backend_secret is not None:
            return self.backend_secret.get_secret_value()
        return self.backend_secrets[0].get_secret_value() if self.backend_secrets else ""

    def identity(self) -> str:
        return self.worker_id or f"{socket.gethostname()}-{os.getpid()}"
