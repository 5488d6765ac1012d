"""`sdq worker`: one worker process, stopped by SIGTERM or Ctrl-C.

SIGTERM (or Ctrl-C) once: finish the current job, exit 0. Twice: release the
current job at once, exit 0.
"""

from __future__ import annotations

import asyncio
import logging
import os
import signal

from gpu_worker.build import build_worker
from gpu_worker.errors import ModelLoadError
from gpu_worker.settings import WorkerSettings
from gpu_worker.worker import Worker
from sdq.logs import configure_logging

log = logging.getLogger(__name__)


def run_worker(settings: WorkerSettings) -> int:
    configure_logging()
    logging.getLogger("httpx").setLevel(logging.WARNING)  # its INFO lines show URLs
    try:
        worker = build_worker(settings)
    except ModelLoadError as exc:
        log.error("cannot start the worker: %s", exc)
        return 2
    log.info(
        "worker %s: transport %s, renderer %s, storage %s",
        settings.identity(), settings.transport, settings.renderer, settings.storage,
    )  # fmt: skip
    code = _run(serve(worker))
    if worker.renders_in_flight:
        # An aborted render still runs in its thread and cannot be interrupted;
        # its job is released already, so leave without waiting for it.
        logging.shutdown()
        os._exit(code)
    return code


async def serve(worker: Worker) -> int:
    loop = asyncio.get_running_loop()
    for signum in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(signum, worker.stop)
    try:
        return await worker.run()
    finally:
        for signum in (signal.SIGTERM, signal.SIGINT):
            loop.remove_signal_handler(signum)
        await worker.source.aclose()


def _run(main: object) -> int:
    """uvloop when installed (it is, with uvicorn[standard]): fewer µs per job."""
    try:
        import uvloop
    except ImportError:
        return asyncio.run(main)  # type: ignore[arg-type]
    return uvloop.run(main)  # type: ignore[arg-type]
