"""Log lines that a flood of requests cannot multiply.

A Redis outage seen by 800 open event streams, or one malformed request sent
in a loop, must not write a line (or a traceback) per request: each kind of
event is written at most once per interval, as one line, with a count of the
repeats it stood for. Nothing a client sent is written raw: control characters
are escaped and the text is cut short.
"""

from __future__ import annotations

import logging
import time
import traceback
from dataclasses import dataclass, field

INTERVAL_S = 10.0
MAX_TEXT = 200


def printable(text: object, limit: int = MAX_TEXT) -> str:
    """`text` as one safe log line: control characters escaped, at most `limit` chars."""
    line = str(text).encode("unicode_escape", "backslashreplace").decode("ascii")
    return line if len(line) <= limit else line[: limit - 3] + "..."


def origin(exc: BaseException) -> str:
    """Where an exception was raised, as `file:line` (the innermost frame)."""
    frames = traceback.extract_tb(exc.__traceback__)
    if not frames:
        return "?"
    last = frames[-1]
    return f"{last.filename.rpartition('/')[2]}:{last.lineno}"


@dataclass
class ThrottledLog:
    """Writes each key's line at most once per `interval_s`."""

    logger: logging.Logger
    interval_s: float = INTERVAL_S
    _last: dict[str, float] = field(default_factory=dict)
    _skipped: dict[str, int] = field(default_factory=dict)

    def forget(self) -> None:
        """Starts every interval afresh (a test that counts lines)."""
        self._last.clear()
        self._skipped.clear()

    def log(self, level: int, key: str, message: str, *args: object) -> None:
        now = time.monotonic()
        last = self._last.get(key)
        if last is not None and now - last < self.interval_s:
            self._skipped[key] = self._skipped.get(key, 0) + 1
            return
        if len(self._last) > 1000:  # keys are few (kinds of events); never grow unbounded
            self._last.clear()
        self._last[key] = now
        skipped = self._skipped.pop(key, 0)
        suffix = f" ({skipped} more like it in the last {self.interval_s:g} s)" if skipped else ""
        self.logger.log(level, message + suffix, *args)

    def unexpected(self, where: str, exc: BaseException) -> None:
        """One line for an error no table maps (a bug): its type, text and origin."""
        kind = type(exc).__name__
        self.log(
            logging.ERROR,
            f"unexpected:{kind}:{where}",
            "unexpected %s on %s at %s: %s",
            kind,
            printable(where, 80),
            origin(exc),
            printable(exc),
        )
