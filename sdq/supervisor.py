"""Child processes of the `sdq` commands: started, watched and stopped one way.

`sdq up`, `sdq cluster`, the embedded Redis and the benchmarks' servers all
run other processes. They stop them the same way (SIGTERM, a grace period in
which a worker finishes its job, then SIGKILL) and watch them the same way (a
child that exits is reported; some children are essential, and the whole
command ends when one of them goes).
"""

from __future__ import annotations

import signal
import socket
import subprocess
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from types import FrameType

Process = subprocess.Popen[bytes]

GRACE_S = 15.0  # SIGTERM first: a worker finishes its job, uvicorn its requests
POLL_S = 0.2


def free_port() -> int:
    """A TCP port free on loopback right now (the OS picks it)."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def spawn(
    args: Sequence[str],
    env: Mapping[str, str] | None = None,
    log: Path | None = None,
    discard_output: bool = False,
) -> Process:
    """Starts `args` with stdin closed. Its output is appended to `log`, dropped with
    `discard_output`, else shared with ours. Our own commands only: never a shell."""
    if log is None:
        dropped = subprocess.DEVNULL if discard_output else None
        return subprocess.Popen(  # noqa: S603 - our own binaries and arguments
            list(args), env=env, stdin=subprocess.DEVNULL, stdout=dropped, stderr=dropped
        )
    with log.open("ab") as out:  # the child keeps its own copy of the descriptor
        return subprocess.Popen(  # noqa: S603 - our own binaries and arguments
            list(args), env=env, stdout=out, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL
        )


def stop(process: Process | None, grace_s: float = GRACE_S) -> None:
    """SIGTERM, then SIGKILL after `grace_s`; returns once the process is gone."""
    if process is None or process.poll() is not None:
        return
    process.terminate()
    try:
        process.wait(timeout=grace_s)
    except subprocess.TimeoutExpired:
        kill(process)


def kill(process: Process | None) -> None:
    """SIGKILL: what a crash looks like (the fault tests and the chaos command use it)."""
    if process is not None and process.poll() is None:
        process.kill()
        process.wait()


@dataclass
class Supervisor:
    """Named children, watched until a stop is asked for or an essential one exits."""

    children: dict[str, Process | None] = field(default_factory=dict)
    essential: set[str] = field(default_factory=set)
    report: Callable[[str], None] = print
    _stopping: bool = False
    _reported: set[str] = field(default_factory=set)

    def add(self, name: str, process: Process | None, essential: bool = False) -> None:
        self.children[name] = process
        self._reported.discard(name)
        if essential:
            self.essential.add(name)

    def stop_on_signals(self) -> None:
        """SIGTERM and SIGINT (Ctrl-C) end `watch` instead of the process."""

        def on_signal(signum: int, frame: FrameType | None) -> None:
            self._stopping = True

        signal.signal(signal.SIGTERM, on_signal)
        signal.signal(signal.SIGINT, on_signal)

    def watch(self, stopping: Callable[[], bool] = lambda: False) -> int:
        """Reports each child that exits; returns 0 when asked to stop, or the exit code
        (at least 1) of an essential child that ended by itself."""
        while not (self._stopping or stopping()):
            for name, process in list(self.children.items()):
                if process is None or process.poll() is None or name in self._reported:
                    continue
                self._reported.add(name)
                self.report(f"{name} exited with {process.returncode}")
                if name in self.essential:
                    return process.returncode or 1
            time.sleep(POLL_S)
        return 0

    def stop_all(self, grace_s: float = GRACE_S) -> None:
        """Stops every child, the last added first (workers before the API before Redis)."""
        for process in reversed(list(self.children.values())):
            stop(process, grace_s)
