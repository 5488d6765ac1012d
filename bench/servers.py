"""The processes a benchmark run needs: uvicorn apps under the production settings.

Both the real app and the ceiling run as `uvicorn --factory ... --workers 2
--loop uvloop --http httptools` with the access log off, as FIELD-NOTES.md
measured (never `--loop asyncio` with several workers: 40 ms per request).
"""

from __future__ import annotations

import os
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Mapping
from dataclasses import dataclass, field

from sdq.supervisor import Process, free_port, spawn, stop

_TICKS = os.sysconf("SC_CLK_TCK") if hasattr(os, "sysconf") else 100


def _stat(pid: int) -> list[str]:
    """The fields of /proc/<pid>/stat after the command name; [] if gone."""
    try:
        with open(f"/proc/{pid}/stat", encoding="ascii", errors="replace") as stat:
            return stat.read().rpartition(")")[2].split()
    except OSError:
        return []


def _tree(root: int) -> list[int]:
    """root and its direct children (uvicorn's workers)."""
    if not os.path.isdir("/proc"):
        return []
    pids = [root]
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            fields = _stat(int(entry))
            if len(fields) > 1 and fields[1] == str(root):
                pids.append(int(entry))
    return pids


def _cpu_seconds(pid: int) -> float:
    fields = _stat(pid)
    return (int(fields[11]) + int(fields[12])) / _TICKS if len(fields) > 12 else 0.0


@dataclass
class Uvicorn:
    factory: str  # "module:function"
    env: Mapping[str, str]
    ready_path: str = "/"
    workers: int = 2
    port: int = field(default_factory=free_port)
    process: Process | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def command(self) -> list[str]:
        return [
            sys.executable,
            "-m",
            "uvicorn",
            "--factory",
            self.factory,
            "--host",
            "127.0.0.1",
            "--port",
            str(self.port),
            "--workers",
            str(self.workers),
            "--loop",
            "uvloop",
            "--http",
            "httptools",
            "--no-access-log",
            "--log-level",
            "warning",
        ]

    def start(self, timeout_s: float = 30.0) -> Uvicorn:
        self.process = spawn(self.command(), {**os.environ, **self.env})
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError(f"{self.factory} exited with {self.process.returncode}")
            try:
                with urllib.request.urlopen(self.url + self.ready_path, timeout=1):
                    return self
            except (urllib.error.URLError, OSError):
                time.sleep(0.1)
        self.stop()
        raise RuntimeError(f"{self.factory} did not answer within {timeout_s} s")

    def cpu_seconds(self) -> float:
        """CPU time used so far by the server and its workers (Linux /proc; 0 elsewhere)."""
        if self.process is None:
            return 0.0
        return sum(_cpu_seconds(pid) for pid in _tree(self.process.pid))

    def stop(self) -> None:
        stop(self.process)
