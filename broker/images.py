"""Where a job's images live: `<token>/<index:05d>.png`, as the existing frontend loads
them from `<bucket or base URL>/<token>/0000<i>.png`. Workers write these keys; the
API names and serves them. Nothing else may define the layout."""

from __future__ import annotations

MAX_IMAGES = 100_000  # five digits


def image_key(token: str, index: int) -> str:
    return f"{token}/{index:05d}.png"
