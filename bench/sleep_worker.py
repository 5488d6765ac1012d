"""A simulated GPU worker for the load benchmark: the real worker loop
(gpu_worker.worker.Worker, its Redis or HTTP source and its image store), with a
renderer that only sleeps, so a few processes stand in for a farm of GPUs
without using the CPU the benchmark measures.

    python -m bench.sleep_worker --ms-per-image 150   (settings from SDQ_*)
"""

from __future__ import annotations

import argparse
import functools
import logging
import time

import uvloop
from PIL import Image

from gpu_worker.build import build_source, build_store
from gpu_worker.renderers.base import RenderedImage, RenderRequest, StepHook, no_hook
from gpu_worker.settings import WorkerSettings
from gpu_worker.worker import Worker
from sdq.logs import configure_logging
from sdq.worker import serve


@functools.cache
def blank(width: int, height: int) -> Image.Image:
    """One grey image per size, made once (each render hands out copies of it)."""
    return Image.new("RGB", (width, height), (128, 128, 128))


class SleepRenderer:
    """Sleeps `ms_per_image` per image (the GPU's time), returns blank images; the
    worker encodes them (a flat image costs its encode pool next to nothing)."""

    name = "sleep"

    def __init__(self, ms_per_image: int) -> None:
        self.ms_per_image = ms_per_image

    def render(self, request: RenderRequest, on_step: StepHook = no_hook) -> list[RenderedImage]:
        time.sleep(self.ms_per_image * len(request.indexes) / 1000)
        image = blank(request.width, request.height)
        return [RenderedImage(image.copy(), {}) for _ in request.indexes]


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
