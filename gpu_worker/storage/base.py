"""Where images go: an attempt stages its images, and publishes them only when it completes.

Images are fenced like states. An attempt (one claim, one fence) first *stages*
each image where only it writes (its own files, or its own memory); only the
fenced completion *publishes* them to the public keys of broker/images.py, with a
create-if-absent write and a check of the lease before every write, so:

- a complete job's public images never change: nothing overwrites a public object
  except an attempt that holds the lease and replaces one that another attempt
  left behind (below), and no attempt holds the lease after the job is complete;
- a stale or cancelled attempt writes no public key (it fails its check), except
  in the instant between its check and its write: a worker frozen right there
  can leave at most one object per write it had in flight;
- two attempts' images never mix: the attempt that completes makes every public
  key hold its own image. Where it finds one it did not write (only that frozen
  stale attempt can have left it, and only before the job is complete), it
  replaces exactly that object, under its own check: a conditional overwrite
  on S3 (If-Match the other object's ETag), a move-aside-then-link on a folder.

docs/worker.md walks through the races. `guard` is the lease check: it raises
LeaseLost (or JobCancelled) and is called right before each write.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Protocol

Guard = Callable[[], None]
PUBLISH_TRIES = 5  # replacing a stale attempt's object: each one can leave only one


@dataclass(frozen=True, slots=True)
class Staged:
    """One staged image of one attempt."""

    token: str
    fence: int
    index: int
    png: bytes
    path: str | None = None  # where a folder store staged it


class ImageStore(Protocol):
    def stage(self, token: str, fence: int, index: int, png: bytes, guard: Guard) -> Staged:
        """Keeps the attempt's image where only this attempt writes. Raises on failure
        (the worker retries, then releases the job)."""
        ...

    def publish(self, staged: Staged, guard: Guard) -> None:
        """Makes the staged image the public one (`<token>/<index:05d>.png`), creating
        it if absent. Raises on failure, LeaseLost once `guard` does."""
        ...

    def discard(self, token: str, fence: int) -> None:
        """Forgets what the attempt staged (when it stops); best effort, never raises."""
        ...

    def clean(self, token: str) -> None:
        """After the job is complete: forgets every attempt's staged leftovers; best
        effort, never raises."""
        ...
