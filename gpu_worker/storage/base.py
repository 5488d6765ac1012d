"""Where images go: `<base>/<token>/<index:05d>.png`, as the existing frontend loads them."""

from __future__ import annotations

from typing import Protocol


def image_key(token: str, index: int) -> str:
    return f"{token}/{index:05d}.png"


class ImageStore(Protocol):
    def put(self, token: str, index: int, png: bytes) -> None:
        """Stores one image; raises on failure (the worker retries, then releases the job)."""
        ...
