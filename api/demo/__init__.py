"""The demo page: api/demo/static/ served at `/` (index) and `/static/` (scripts, styles).

Only these two prefixes: a catch-all mount at `/` would shadow any route added
to the app after it.
"""

from __future__ import annotations

from pathlib import Path

from fastapi import APIRouter, FastAPI
from fastapi.responses import FileResponse
from starlette.staticfiles import StaticFiles

__all__ = ["CSP", "HEADERS", "STATIC", "install", "router", "static_files"]

STATIC = Path(__file__).resolve().parent / "static"

# The page loads its own files, and hCaptcha's script and frame when a captcha is
# required; images may come from a bucket or CDN anywhere.
CSP = (
    "default-src 'self'; "
    "script-src 'self' https://js.hcaptcha.com https://*.hcaptcha.com; "
    "frame-src https://*.hcaptcha.com; "
    "style-src 'self' 'unsafe-inline' https://*.hcaptcha.com; "
    "connect-src 'self' https://*.hcaptcha.com; "
    "img-src * data: blob:; "
    "base-uri 'none'; form-action 'self'; frame-ancestors 'none'"
)
HEADERS = {
    "Content-Security-Policy": CSP,
    "Cache-Control": "no-cache",
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "no-referrer",  # the page's URL may hold a job's token
}

router = APIRouter(tags=["demo"])


@router.get("/", include_in_schema=False)
async def index() -> FileResponse:
    return FileResponse(STATIC / "index.html", media_type="text/html", headers=HEADERS)


def static_files() -> StaticFiles:
    return StaticFiles(directory=STATIC)


def install(app: FastAPI) -> None:
    """Adds the page at `/` and its files at `/static/`."""
    app.include_router(router)
    app.mount("/static", static_files(), name="static")
