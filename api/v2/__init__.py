"""The v2 API: JSON, OpenAPI-documented, beside the legacy paths.

POST   /v2/jobs                  queue a job (the rules and captcha of /addJob)
GET    /v2/jobs/{token}          state, position, progress, ETA, image URLs
DELETE /v2/jobs/{token}          cancel it
GET    /v2/jobs/{token}/events   Server-Sent Events of the same
GET    /v2/queue                 depth, live workers, throughput, render times
GET    /v2/config                what the demo page needs (captcha site key, ...)
"""

from __future__ import annotations

from fastapi import FastAPI

from api.settings import ApiSettings
from api.v2.images import image_urls
from api.v2.routes import router
from api.v2.view import V2Context, load_job
from api.v2.watch import JobWatches

__all__ = ["errors", "events", "images", "install", "models", "routes", "view", "watch"]


def install(app: FastAPI, settings: ApiSettings) -> None:
    """Adds the v2 routes to the app."""
    watches = JobWatches(
        lambda token: load_job(app.state.services, app.state.v2, token), settings.sse_poll_s
    )
    app.state.v2 = V2Context(settings, image_urls(settings), watches)
    app.include_router(router)
