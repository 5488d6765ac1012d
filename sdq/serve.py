"""`sdq api`: serves the app with the fast settings measured on these machines."""

from __future__ import annotations

import os
import tempfile

import uvicorn

from api.settings import ApiSettings
from sdq.logs import configure_logging


def serve(settings: ApiSettings) -> None:
    """uvloop + httptools; never `--loop asyncio` with several workers (a uvicorn bug
    leaves TCP_NODELAY off: ~40 ms per keep-alive request). uvicorn's access log is
    off because it would print `secret=`; api/access_log.py writes a redacted one."""
    configure_logging(settings.log_json)
    if settings.workers > 1 and settings.metrics and "PROMETHEUS_MULTIPROC_DIR" not in os.environ:
        # Several worker processes: their HTTP metrics meet in files (api/metrics.py).
        os.environ["PROMETHEUS_MULTIPROC_DIR"] = tempfile.mkdtemp(prefix="sdq-metrics-")
    uvicorn.run(
        "api.app:create_app",
        factory=True,
        host=settings.host,
        port=settings.port,
        workers=settings.workers,
        loop="uvloop",
        http="httptools",
        access_log=False,
        log_config=None,
        timeout_graceful_shutdown=10,
    )
