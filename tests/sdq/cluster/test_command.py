"""`sdq cluster` as a user runs it: it prints where everything is, serves through
nginx, and one SIGTERM stops every process it started."""

from __future__ import annotations

import re
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import httpx
import pytest

from sdq.cluster import find_nginx
from sdq.supervisor import free_port

pytestmark = pytest.mark.slow


def read_banner(proc: subprocess.Popen[str], timeout_s: float) -> str:
    assert proc.stdout is not None
    lines: list[str] = []
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        line = proc.stdout.readline()
        if not line:
            break
        lines.append(line)
        if "Ctrl-C stops everything" in line:
            return "".join(lines)
    raise AssertionError("no banner:\n" + "".join(lines))


def accepts(port: int) -> bool:
    with socket.socket() as sock:
        sock.settimeout(0.5)
        return sock.connect_ex(("127.0.0.1", port)) == 0


def test_cluster_command_serves_and_stops_everything_on_sigterm(tmp_path: Path) -> None:
    if find_nginx() is None:
        pytest.skip("nginx is not installed (scripts/test installs it: apt-get install nginx)")
    port = free_port()
    args = ["--data-dir", str(tmp_path), "--port", str(port), "--replicas", "2", "--workers", "1"]
    with subprocess.Popen(
        [sys.executable, "-m", "sdq.cli", "cluster", *args],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        env={"PATH": "/usr/sbin:/usr/bin:/bin", "SDQ_INSECURE_SKIP_CAPTCHA": "true"},
    ) as proc:
        try:
            banner = read_banner(proc, timeout_s=60.0)
            ports = [int(p) for p in re.findall(r"http://127\.0\.0\.1:(\d+)", banner)]
            redis_port = int(re.findall(r"redis://127\.0\.0\.1:(\d+)", banner)[0])
            assert ports[0] == port and len(ports) == 3  # the load balancer, then 2 replicas
            query = {"prompt": "hi", "number": "1", "resolution": "576x576", "captcha": "x"}
            answer = httpx.get(f"http://127.0.0.1:{port}/addJob", params=query)
            assert answer.status_code == 200 and len(answer.json()) == 32

            proc.send_signal(signal.SIGTERM)
            assert proc.wait(timeout=30) == 0
        finally:
            if proc.poll() is None:  # a failed assertion above: stop the cluster too
                proc.terminate()
                proc.wait(timeout=30)
    assert not any(accepts(p) for p in [*ports, redis_port]), "a child outlived the command"
    assert list((tmp_path / "redis").rglob("*.aof")), "Redis kept an append-only file"
