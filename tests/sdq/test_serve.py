"""`sdq api`: settings built once by the command, served by a real uvicorn."""

from __future__ import annotations

import os
import subprocess
import sys
import time

import httpx
import pytest
from pydantic import SecretStr
from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol

from api.settings import ApiSettings
from sdq.embedded_redis import EmbeddedRedis
from sdq.serve import uvicorn_options
from sdq.supervisor import free_port, spawn, stop

BASE_ENV = {
    "SDQ_BACKEND_SECRETS": "a-backend-secret-for-the-serve-tests",
    "SDQ_INSECURE_SKIP_CAPTCHA": "true",
    "SDQ_ACCESS_LOG": "false",
}


def test_uvicorn_runs_with_the_measured_options_and_without_proxy_headers() -> None:
    settings = ApiSettings(backend_secrets=[SecretStr("s" * 32)], insecure_skip_captcha=True)
    options = uvicorn_options(settings)
    assert (options["loop"], options["access_log"]) == ("uvloop", False)
    assert isinstance(options["http"], type) and issubclass(options["http"], HttpToolsProtocol)
    # SDQ_TRUSTED_PROXIES alone decides whose X-Forwarded-For is believed
    assert options["proxy_headers"] is False


def wait_healthy(url: str, process: subprocess.Popen[bytes], timeout_s: float = 30) -> None:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        assert process.poll() is None, f"sdq api exited with {process.returncode}"
        try:
            if httpx.get(f"{url}/healthz", timeout=1).status_code == 200:
                return
        except httpx.TransportError:
            time.sleep(0.1)
    raise AssertionError(f"{url} did not answer")


@pytest.mark.slow
@pytest.mark.parametrize("workers", ["1", "2"])
def test_command_line_overrides_reach_every_worker_process(
    redis_engine: EmbeddedRedis, workers: str
) -> None:
    port = free_port()
    env = {**os.environ, **BASE_ENV, "SDQ_REDIS_URL": redis_engine.url, "SDQ_PORT": "1"}
    args = ["api", "--host", "127.0.0.1", "--port", str(port), "--workers", workers]
    process = spawn([sys.executable, "-m", "sdq", *args], env)
    try:
        wait_healthy(f"http://127.0.0.1:{port}", process)
    finally:
        stop(process)


def test_invalid_settings_end_the_command_with_exit_2_and_the_reason() -> None:
    env = {k: v for k, v in os.environ.items() if not k.startswith("SDQ_")}
    done = subprocess.run(
        [sys.executable, "-m", "sdq", "api"], env=env, capture_output=True, text=True, timeout=60
    )
    assert done.returncode == 2
    assert "sdq api: invalid settings" in done.stderr
    assert "no backend secret" in done.stderr
    assert "Traceback" not in done.stderr
