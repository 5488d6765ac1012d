"""The API's sweeper deletes the images of finished jobs from SDQ_IMAGES_DIR when due:
a cancelled or failed job's at once, a complete job's when it expires."""

from __future__ import annotations

import asyncio
import time
from pathlib import Path

from redis.asyncio import Redis

from api.app import create_app
from api.settings import ApiSettings
from broker.image_gc import can_collect
from broker.queue import Queue
from broker.states import JobState

DONE, CANCELLED = "d" * 32, "c" * 32


async def test_sweeper_deletes_due_images_from_the_folder_it_serves(
    redis: Redis, settings: ApiSettings, queue: Queue, tmp_path: Path
) -> None:
    for token in (DONE, CANCELLED):
        (tmp_path / token).mkdir()
        (tmp_path / token / "00000.png").write_bytes(b"png")
    await queue.add_job(DONE, "kept", 1, 576, 576)
    fence, _ = await queue.set_state(DONE, JobState.PENDING)
    await queue.complete(DONE, fence)
    await queue.add_job(CANCELLED, "withdrawn", 1, 576, 576)
    await queue.cancel(CANCELLED)
    app = create_app(
        settings.model_copy(update={"images_dir": tmp_path, "sweep_interval_s": 0.05}), redis=redis
    )

    async with app.router.lifespan_context(app):
        deadline = time.monotonic() + 10
        while (tmp_path / CANCELLED).exists():
            assert time.monotonic() < deadline, "not deleted"
            await asyncio.sleep(0.02)

    assert (tmp_path / DONE / "00000.png").exists()  # complete: kept for its retention


def test_image_gc_needs_a_folder_it_may_write(tmp_path: Path) -> None:
    assert can_collect(tmp_path)
    assert not can_collect(tmp_path / "missing")
