"""`sdq api`: serves the app with the fast settings measured on these machines.

The settings are built once, by the command. One uvicorn worker serves the app
built from exactly that object. Several workers are separate processes that
each import the factory, so the command's own overrides (`--host`, `--port`,
`--workers`) are handed to them through the environment they read.
"""

from __future__ import annotations

import os
import tempfile

import uvicorn

from api.app import create_app
from api.settings import ApiSettings
from sdq.http_protocol import BoundedHttpToolsProtocol
from sdq.logs import configure_logging

FACTORY = "api.app:create_app"
PASSED_ON = ("host", "port", "workers")  # what the command line may override
_SERVER_LIMITS = ("max_header_bytes", "header_timeout_s")  # read by each worker's protocol


def uvicorn_options(settings: ApiSettings) -> dict[str, object]:
    """uvloop + httptools, bounded (sdq/http_protocol.py); never `--loop asyncio` with
    several workers (a uvicorn bug leaves TCP_NODELAY off: ~40 ms per keep-alive
    request). uvicorn's access log is
    off because it would print `secret=`; api/access_log.py writes a redacted one.
    Proxy headers are off: SDQ_TRUSTED_PROXIES alone decides which X-Forwarded-For
    is believed (api/client_address.py); uvicorn's would trust any loopback peer."""
    return {
        "host": settings.host,
        "port": settings.port,
        "workers": settings.workers,
        "loop": "uvloop",
        "http": BoundedHttpToolsProtocol,
        "limit_concurrency": settings.max_connections,
        "timeout_keep_alive": settings.keep_alive_s,
        "access_log": False,
        "log_config": None,
        "proxy_headers": False,
        "timeout_graceful_shutdown": 10,
    }


def serve(settings: ApiSettings) -> None:
    configure_logging(settings.log_json)
    BoundedHttpToolsProtocol.configure(settings.max_header_bytes, settings.header_timeout_s)
    options = uvicorn_options(settings)
    if settings.workers == 1:
        uvicorn.run(create_app(settings), **options)  # type: ignore[arg-type]
        return
    passed = (*PASSED_ON, *_SERVER_LIMITS)
    os.environ.update({f"SDQ_{name.upper()}": str(getattr(settings, name)) for name in passed})
    if settings.metrics and "PROMETHEUS_MULTIPROC_DIR" not in os.environ:
        # Several worker processes: their HTTP metrics meet in files (api/metrics.py).
        os.environ["PROMETHEUS_MULTIPROC_DIR"] = tempfile.mkdtemp(prefix="sdq-metrics-")
    uvicorn.run(FACTORY, factory=True, **options)  # type: ignore[arg-type]
