"""`sdq worker`: one worker process, stopped by SIGTERM or Ctrl-C.

SIGTERM (or Ctrl-C) once: finish the current job, exit 0. Twice: release the
current job at once, exit 0. While the worker is still starting (loading its
model, compiling it) SIGTERM ends it at once, exit 0: the handlers are in place
before the model loads, which matters most where the worker is PID 1 in a
container (a signal without a handler does nothing to PID 1, and the kubelet
would wait out the whole grace period). A hung GPU (a step longer than
SDQ_STEP_TIMEOUT_S) ends the process with exit code 3, for its orchestrator to
restart it.
"""

from __future__ import annotations

import asyncio
import logging
import os
import signal
from concurrent.futures import ThreadPoolExecutor
from typing import Any

from gpu_worker.build import build_worker
from gpu_worker.errors import ModelLoadError
from gpu_worker.renderers.base import WarmsUp
from gpu_worker.settings import WorkerSettings
from gpu_worker.worker import Worker
from sdq.logs import configure_logging

log = logging.getLogger(__name__)

SIGNALS = (signal.SIGTERM, signal.SIGINT)


def run_worker(settings: WorkerSettings) -> int:
    configure_logging()
    logging.getLogger("httpx").setLevel(logging.WARNING)  # its INFO lines show URLs
    starter = ThreadPoolExecutor(1, thread_name_prefix="start")
    state: dict[str, Worker | bool] = {}
    code = _run(main(settings, starter, state))
    worker = state.get("worker")
    stuck = state.get("abandoned") or (isinstance(worker, Worker) and worker.renders_in_flight)
    if stuck:
        # A model load, or an aborted or hung render, still runs in its thread and
        # cannot be interrupted; every job is released already: leave without it.
        logging.shutdown()
        os._exit(code)
    starter.shutdown()
    return code


async def main(
    settings: WorkerSettings, starter: ThreadPoolExecutor, state: dict[str, Worker | bool]
) -> int:
    """Starts the worker (loading the model in `starter`'s thread) and runs it; a stop
    signal while starting returns 0 at once and marks the start `abandoned`."""
    loop = asyncio.get_running_loop()
    starting_up = asyncio.Event()

    def on_signal() -> None:
        worker = state.get("worker")
        if isinstance(worker, Worker):
            worker.stop()
        else:
            starting_up.set()

    for signum in SIGNALS:
        loop.add_signal_handler(signum, on_signal)
    try:
        log.info(
            "worker %s: starting (renderer %s, loading it first)",
            settings.identity(), settings.renderer,
        )  # fmt: skip
        start = loop.run_in_executor(starter, _start, settings)
        stop: asyncio.Future[Any] = asyncio.ensure_future(starting_up.wait())
        await asyncio.wait({start, stop}, return_when=asyncio.FIRST_COMPLETED)
        stop.cancel()
        if not start.done():
            log.info("stopped while starting: exiting")
            state["abandoned"] = True
            return 0
        try:
            worker = start.result()
        except ModelLoadError as exc:
            log.error("cannot start the worker: %s", exc)
            return 2
        state["worker"] = worker
        log.info(
            "worker %s: transport %s, renderer %s, storage %s",
            settings.identity(), settings.transport, settings.renderer, settings.storage,
        )  # fmt: skip
        try:
            return await worker.run()
        finally:
            await worker.source.aclose()
    finally:
        for signum in SIGNALS:
            loop.remove_signal_handler(signum)


def _start(settings: WorkerSettings) -> Worker:
    """In the start thread: the worker's parts, the model loaded and warmed up."""
    worker = build_worker(settings)
    if isinstance(worker.renderer, WarmsUp):
        worker.renderer.warm_up()
    return worker


async def serve(worker: Worker) -> int:
    """Runs a worker that is built already, stopped by SIGTERM / SIGINT (benchmarks)."""
    loop = asyncio.get_running_loop()
    for signum in SIGNALS:
        loop.add_signal_handler(signum, worker.stop)
    try:
        return await worker.run()
    finally:
        for signum in SIGNALS:
            loop.remove_signal_handler(signum)
        await worker.source.aclose()


def _run(main: object) -> int:
    """uvloop when installed (it is, with uvicorn[standard]): fewer µs per job."""
    try:
        import uvloop
    except ImportError:
        return asyncio.run(main)  # type: ignore[arg-type]
    return uvloop.run(main)  # type: ignore[arg-type]
