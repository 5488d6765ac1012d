"""Serves the local image folder read-only, in the layout the frontend loads from S3.

`/images/<token>/<index:05d>.png`, nothing else: the token must be 32 lower-case
hex characters and the file name five digits and `.png`, so no path can leave
the folder, and there is no listing of tokens or of a job's images.
"""

from __future__ import annotations

import re
from pathlib import Path

from fastapi import APIRouter, Request
from fastapi.responses import FileResponse, JSONResponse, Response

from broker.tokens import is_token

_NAME = re.compile(r"[0-9]{5}\.png")
_HEADERS = {
    "X-Content-Type-Options": "nosniff",
    "Cache-Control": "public, max-age=86400, immutable",  # an image never changes once stored
    "Access-Control-Allow-Origin": "*",
}


def images_router(folder: Path) -> APIRouter:
    """The route for one folder (resolved once, at start-up)."""
    root = folder.resolve()
    router = APIRouter(tags=["images"])

    @router.get(
        "/images/{token}/{name}",
        summary="One stored image, as <token>/<index:05d>.png",
        response_model=None,
    )
    @router.head("/images/{token}/{name}", include_in_schema=False, response_model=None)
    async def image(token: str, name: str, request: Request) -> Response:
        path = image_path(root, token, name)
        if path is None:
            return JSONResponse("image not found", status_code=404)
        return FileResponse(path, media_type="image/png", headers=_HEADERS)

    return router


def image_path(root: Path, token: str, name: str) -> Path | None:
    """The file for a well-formed (token, name) inside root, or None."""
    if not (is_token(token) and _NAME.fullmatch(name)):
        return None
    path = root / token / name
    try:
        resolved = path.resolve(strict=True)
    except (OSError, RuntimeError):
        return None
    if not resolved.is_file() or not resolved.is_relative_to(root):
        return None  # a link pointing out of the folder is not served
    return resolved
