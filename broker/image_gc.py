"""Deletes the images of finished jobs from a local folder, when they are due.

finish() (broker/lua/_lib.lua) schedules every finished job in `{p}:image_gc`: a
complete job's images at its retention end (when the job itself expires), a
cancelled or failed job's at once (all it can have are leftovers: an attempt's
staged files, or a public file a stale attempt wrote in its last moment). The
owner of a local folder (a worker with local storage, or the API's sweeper
when SDQ_IMAGES_DIR is set and writable) calls `collect` now and then: it takes
the due tokens (atomically: of several owners of one folder exactly one gets
each token) and deletes `<folder>/<token>/`. In an S3 bucket a lifecycle rule
does the same (README).
"""

from __future__ import annotations

import asyncio
import logging
import os
import shutil
from pathlib import Path

from broker.queue import Queue
from broker.tokens import is_token

log = logging.getLogger(__name__)

BATCH = 100


def can_collect(folder: Path) -> bool:
    """Whether this process may delete in `folder` (a read-only mount may not)."""
    return folder.is_dir() and os.access(folder, os.W_OK | os.X_OK)


def delete_folder(folder: Path, token: str) -> bool:
    """Deletes `<folder>/<token>/` and all in it; False when there was none."""
    if not is_token(token):  # never a path of someone else's making
        return False
    path = folder / token
    if not path.is_dir() or path.is_symlink():
        return False
    shutil.rmtree(path, ignore_errors=True)
    return True


def _delete_all(folder: Path, tokens: list[str]) -> int:
    return sum(delete_folder(folder, token) for token in tokens)


async def collect(queue: Queue, folder: Path, batches: int = 10) -> int:
    """Deletes the folders of the due tokens (up to `batches` x 100); returns how many."""
    deleted = 0
    for _ in range(batches):
        tokens = await queue.take_due_images(BATCH)
        if tokens:
            deleted += await asyncio.to_thread(_delete_all, folder, tokens)
        if len(tokens) < BATCH:
            break
    if deleted:
        log.info("deleted the images of %d finished job(s) from %s", deleted, folder)
    return deleted
