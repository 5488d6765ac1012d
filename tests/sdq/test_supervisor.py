"""Child processes: started, watched and stopped one way (sdq/supervisor.py)."""

from __future__ import annotations

import sys
import time
from pathlib import Path

from sdq.supervisor import Supervisor, kill, spawn, stop

PYTHON = sys.executable
IGNORES_SIGTERM = (
    "import signal, time; signal.signal(signal.SIGTERM, signal.SIG_IGN); time.sleep(60)"
)


def test_stop_ends_a_child_with_sigterm_within_the_grace_period() -> None:
    child = spawn([PYTHON, "-c", "import time; time.sleep(60)"])
    started = time.monotonic()
    stop(child, grace_s=10)
    assert child.returncode == -15  # SIGTERM did it
    assert time.monotonic() - started < 5


def test_stop_kills_a_child_that_ignores_sigterm_after_the_grace_period() -> None:
    child = spawn([PYTHON, "-c", IGNORES_SIGTERM])
    time.sleep(0.5)  # let it install the handler
    started = time.monotonic()
    stop(child, grace_s=0.5)
    assert child.returncode == -9
    assert 0.4 < time.monotonic() - started < 5


def test_stop_and_kill_accept_a_child_that_is_gone_or_none() -> None:
    child = spawn([PYTHON, "-c", "pass"])
    child.wait()
    stop(child)
    kill(child)
    stop(None)
    kill(None)


def test_spawn_appends_the_output_to_a_log(tmp_path: Path) -> None:
    log = tmp_path / "child.log"
    log.write_text("before\n")
    spawn([PYTHON, "-c", "print('hello')"], log=log).wait()
    assert log.read_text() == "before\nhello\n"


def test_watch_ends_with_the_exit_code_of_an_essential_child() -> None:
    lines: list[str] = []
    supervisor = Supervisor(report=lines.append)
    supervisor.add("helper", spawn([PYTHON, "-c", "raise SystemExit(0)"]))
    supervisor.add(
        "api",
        spawn([PYTHON, "-c", "import time; time.sleep(0.5); raise SystemExit(3)"]),
        essential=True,
    )
    assert supervisor.watch() == 3
    assert lines == ["helper exited with 0", "api exited with 3"]


def test_watch_returns_0_when_asked_to_stop_and_stop_all_ends_every_child() -> None:
    supervisor = Supervisor(report=lambda line: None)
    children = [spawn([PYTHON, "-c", "import time; time.sleep(60)"]) for _ in range(2)]
    for i, child in enumerate(children):
        supervisor.add(f"child-{i}", child, essential=True)
    deadline = time.monotonic() + 0.5
    assert supervisor.watch(stopping=lambda: time.monotonic() > deadline) == 0
    supervisor.stop_all(grace_s=5)
    assert all(child.poll() is not None for child in children)
