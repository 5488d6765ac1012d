"""A simulated GPU worker for the load benchmark: the real worker loop
(gpu_worker.worker.Worker, its Redis or HTTP source and its image store), with a
renderer that only sleeps, so a few processes stand in for a farm of GPUs
without using the CPU the benchmark measures.

    python -m bench.sleep_worker --ms-per-image 150   (settings from SDQ_*)
"""

from __future__ import annotations

import argparse
import functools
import io
import logging
import time

import uvloop
from PIL import Image

from gpu_worker.build import build_source, build_store
from gpu_worker.renderers.base import RenderRequest
from gpu_worker.settings import WorkerSettings
from gpu_worker.worker import Worker
from sdq.logs import configure_logging
from sdq.worker import serve


@functools.cache
def blank_png(width: int, height: int) -> bytes:
    """One grey PNG per size, encoded once: a sleep renderer costs no CPU per image."""
    out = io.BytesIO()
    Image.new("L", (width, height), 128).save(out, format="PNG")
    return out.getvalue()


class SleepRenderer:
    """Sleeps `ms_per_image` per image (the GPU's time), returns a blank image."""

    name = "sleep"

    def __init__(self, ms_per_image: int) -> None:
        self.ms_per_image = ms_per_image

    def render(self, request: RenderRequest) -> list[bytes]:
        time.sleep(self.ms_per_image * len(request.indexes) / 1000)
        return [blank_png(request.width, request.height) for _ in request.indexes]


def main() -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.sleep_worker", description=__doc__)
    parser.add_argument("--ms-per-image", type=int, default=150)
    args = parser.parse_args()
    configure_logging()
    logging.getLogger("httpx").setLevel(logging.WARNING)
    settings = WorkerSettings()
    source = build_source(settings, settings.identity())
    worker = Worker(source, SleepRenderer(args.ms_per_image), build_store(settings), settings)
    return uvloop.run(serve(worker))


if __name__ == "__main__":
    raise SystemExit(main())
