"""Runs wrk with a generated Lua script and reads its summary back as numbers.

The script rotates through a list of request paths (so /getJobStatus polls many
tokens, not one cached key) and prints one machine-readable line at the end:
exact p50/p99 from wrk's own histogram and the count of non-2xx/3xx answers.
"""

from __future__ import annotations

import json
import shutil
import subprocess
import tempfile
from dataclasses import dataclass
from pathlib import Path

_MARK = "BENCH-JSON "
_SCRIPT = """
local paths = {%(paths)s}
local prepared = {}
local counter = 0

function init(args)
  for i, path in ipairs(paths) do
    prepared[i] = wrk.format("GET", path)
  end
  counter = math.random(#prepared) - 1
end

function request()
  counter = counter %% #prepared + 1
  return prepared[counter]
end

function done(summary, latency, requests)
  local e = summary.errors
  io.write(string.format(
    '%(mark)s{"requests":%%d,"duration_us":%%d,"p50_us":%%d,"p99_us":%%d,' ..
    '"non_2xx":%%d,"socket_errors":%%d}\\n',
    summary.requests, summary.duration, latency:percentile(50), latency:percentile(99),
    e.status, e.connect + e.read + e.write + e.timeout))
end
"""


@dataclass(frozen=True, slots=True)
class WrkResult:
    requests: int
    rps: float
    p50_ms: float
    p99_ms: float
    non_2xx: int
    socket_errors: int


@dataclass(frozen=True, slots=True)
class Load:
    """How hard to push: wrk's -t, -c and -d."""

    threads: int = 2
    connections: int = 32
    duration_s: int = 5  # wrk takes whole seconds


def require_wrk() -> str:
    found = shutil.which("wrk")
    if found is None:
        raise SystemExit("wrk is not installed (Debian/Ubuntu: apt-get install -y wrk)")
    return found


def lua_script(paths: list[str]) -> str:
    if not paths:
        raise ValueError("wrk needs at least one request path")
    quoted = ",\n".join(json.dumps(path) for path in paths)  # a JSON string is a Lua string
    return _SCRIPT % {"paths": quoted, "mark": _MARK}


def run_wrk(base_url: str, paths: list[str], load: Load) -> WrkResult:
    """One wrk run against base_url, rotating through paths."""
    with tempfile.TemporaryDirectory(prefix="sdq-bench-") as folder:
        script = Path(folder) / "rotate.lua"
        script.write_text(lua_script(paths), encoding="utf-8")
        command = [
            require_wrk(),
            f"-t{load.threads}",
            f"-c{load.connections}",
            f"-d{load.duration_s}s",
            "--timeout",
            "5s",
            "-s",
            str(script),
            base_url,
        ]
        done = subprocess.run(
            command, capture_output=True, text=True, timeout=load.duration_s + 60, check=False
        )
    if done.returncode != 0:
        raise RuntimeError(f"wrk failed ({done.returncode}): {done.stderr.strip()}")
    return parse_summary(done.stdout)


def parse_summary(output: str) -> WrkResult:
    for line in output.splitlines():
        if line.startswith(_MARK):
            raw = json.loads(line.removeprefix(_MARK))
            seconds = raw["duration_us"] / 1e6
            return WrkResult(
                requests=raw["requests"],
                rps=raw["requests"] / seconds if seconds else 0.0,
                p50_ms=raw["p50_us"] / 1000,
                p99_ms=raw["p99_us"] / 1000,
                non_2xx=raw["non_2xx"],
                socket_errors=raw["socket_errors"],
            )
    raise RuntimeError(f"wrk printed no summary line:\n{output}")
