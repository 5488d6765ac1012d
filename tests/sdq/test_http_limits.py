"""`sdq api` facing clients without nginx: a real uvicorn, attacked over real sockets.

Each case was seen before the limits: a 40 MiB header accepted, a slowloris
connection held past 40 s, a 100 MiB JSON body read whole, no connection cap.
"""

from __future__ import annotations

import os
import socket
import sys
import time
from collections.abc import Iterator

import pytest

from sdq.embedded_redis import EmbeddedRedis
from sdq.supervisor import Process, free_port, spawn, stop
from tests.conftest import BACKEND_SECRET
from tests.sdq.test_serve import wait_healthy

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def api(redis_engine: EmbeddedRedis) -> Iterator[int]:
    port = free_port()
    env = {
        **os.environ,
        "SDQ_REDIS_URL": redis_engine.url,
        "SDQ_BACKEND_SECRETS": BACKEND_SECRET,
        "SDQ_INSECURE_SKIP_CAPTCHA": "true",
        "SDQ_ACCESS_LOG": "false",
        "SDQ_HEADER_TIMEOUT_S": "1",
        "SDQ_MAX_CONNECTIONS": "16",
    }
    process: Process = spawn(
        [sys.executable, "-m", "sdq", "api", "--host", "127.0.0.1", "--port", str(port)], env
    )
    try:
        wait_healthy(f"http://127.0.0.1:{port}", process)
        yield port
    finally:
        stop(process)


def connect(port: int) -> socket.socket:
    sock = socket.create_connection(("127.0.0.1", port), timeout=5)
    sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    return sock


def read_all(sock: socket.socket) -> bytes:
    chunks = []
    try:
        while chunk := sock.recv(65536):
            chunks.append(chunk)
    except (ConnectionResetError, TimeoutError):
        pass
    return b"".join(chunks)


def test_a_huge_header_is_refused_with_431_and_the_connection_closed(api: int) -> None:
    with connect(api) as sock:
        sock.sendall(b"GET /healthz HTTP/1.1\r\nHost: x\r\nX-Big: ")
        try:
            for _ in range(200):  # 200 x 64 KiB, far past the limit
                sock.sendall(b"a" * 65536)
        except (BrokenPipeError, ConnectionResetError):
            pass
        assert read_all(sock).startswith(b"HTTP/1.1 431 ")


def test_a_header_under_the_limit_is_served(api: int) -> None:
    with connect(api) as sock:
        sock.sendall(b"GET /healthz HTTP/1.1\r\nHost: x\r\nX-Ok: " + b"a" * 8000 + b"\r\n\r\n")
        assert sock.recv(65536).startswith(b"HTTP/1.1 200 ")


def test_a_slowloris_client_is_cut_off_after_the_header_timeout(api: int) -> None:
    with connect(api) as sock:
        started = time.monotonic()
        sock.sendall(b"GET /healthz HTTP/1.1\r\nHost: x\r\n")
        answer = b""
        while time.monotonic() - started < 10:
            try:
                sock.sendall(b"X-Slow: 1\r\n")
            except (BrokenPipeError, ConnectionResetError):
                break
            sock.settimeout(0.3)
            try:
                answer += sock.recv(4096)
            except TimeoutError:
                continue
            if answer:
                break
        assert answer.startswith(b"HTTP/1.1 408 ")
        assert time.monotonic() - started < 5  # SDQ_HEADER_TIMEOUT_S=1, with slack


def test_an_idle_connection_that_never_sends_is_closed(api: int) -> None:
    with connect(api) as sock:
        started = time.monotonic()
        assert read_all(sock).startswith(b"HTTP/1.1 408 ")
        assert time.monotonic() - started < 5


@pytest.mark.parametrize("path", ["/v2/jobs", f"/backend/report?secret={BACKEND_SECRET}"])
def test_a_body_over_the_limit_is_refused_with_413_before_it_is_read(api: int, path: str) -> None:
    with connect(api) as sock:
        head = (
            f"POST {path} HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
            f"Content-Length: {100 * 1024 * 1024}\r\n\r\n"
        )
        sock.sendall(head.encode() + b"{" + b" " * 60000)
        answer = b""
        while not answer.endswith(b"Content Too Large"):
            chunk = sock.recv(65536)
            assert chunk, answer
            answer += chunk
        assert answer.startswith(b"HTTP/1.1 413 ")
        # starlette's own body limit answers (FastAPI's max_body_size), in plain text
        assert answer.endswith(b"\r\n\r\nContent Too Large")


def test_connections_past_the_cap_get_503(api: int) -> None:
    """SDQ_MAX_CONNECTIONS=16: kept-alive connections count, and a request arriving
    while 16 are open is answered 503 at once instead of queueing."""
    held = [connect(api) for _ in range(20)]
    try:
        answers = []
        for sock in held:
            sock.sendall(b"GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n")
            answers.append(sock.recv(4096)[:12])
        assert b"HTTP/1.1 503" in answers  # a 503 closes its connection: room for one more
        assert answers.count(b"HTTP/1.1 200") <= 16
    finally:
        for sock in held:
            sock.close()
