"""`sdq up`, the quick start: API + worker + embedded Redis, on this machine only."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import httpx
import pytest

from sdq.supervisor import free_port, stop
from sdq.up import is_loopback


def up_env() -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("SDQ_")}
    env["SDQ_TEST_PATTERN_MS_PER_IMAGE"] = "20"
    return env


def test_sdq_up_refuses_a_public_address_with_captcha_off(tmp_path: Path) -> None:
    done = subprocess.run(
        [sys.executable, "-m", "sdq", "up", "--host", "0.0.0.0", "--data-dir", str(tmp_path)],
        env=up_env(),
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode == 2
    assert "refusing to serve 0.0.0.0 with captcha verification off" in done.stderr
    assert "--allow-public-without-captcha" in done.stderr
    assert not (tmp_path / "redis").exists()  # refused before anything started


@pytest.mark.parametrize(
    ("host", "loopback"),
    [("127.0.0.1", True), ("localhost", True), ("::1", True), ("[::1]", True),
     ("0.0.0.0", False), ("192.0.2.10", False), ("::", False), ("example.org", False)],
)  # fmt: skip
def test_only_loopback_addresses_count_as_this_machine(host: str, loopback: bool) -> None:
    assert is_loopback(host) is loopback


@pytest.mark.slow
def test_sdq_up_serves_a_job_from_prompt_to_png_on_loopback_and_stops_on_sigterm(
    tmp_path: Path,
) -> None:
    port = free_port()
    process = subprocess.Popen(
        [sys.executable, "-m", "sdq", "up", "--port", str(port), "--data-dir", str(tmp_path)],
        env=up_env(),
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
    )
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 60
        with httpx.Client(base_url=url, timeout=2) as http:
            while True:
                assert process.poll() is None and time.monotonic() < deadline
                try:
                    if http.get("/readyz").status_code == 200:
                        break
                except httpx.TransportError:
                    time.sleep(0.2)
            query = "prompt=An+apple&number=2&resolution=576x576&captcha=demo"
            token = http.get(f"/addJob?{query}").json()
            while http.get(f"/getJobStatus?token={token}").json()["State"] != "complete":
                assert time.monotonic() < deadline
                time.sleep(0.2)
            image = http.get(f"/images/{token}/00001.png")
            assert image.content.startswith(b"\x89PNG")
        process.send_signal(signal.SIGTERM)
        output = process.communicate(timeout=60)[0].decode()
        assert process.returncode == 0
    finally:
        stop(process)
    assert f"listening on   127.0.0.1:{port} (this machine only" in output
    assert "captcha verification is OFF" in output
