"""Where images go: a store keeps each PNG under broker/images.py's key layout."""

from __future__ import annotations

from typing import Protocol


class ImageStore(Protocol):
    def put(self, token: str, index: int, png: bytes) -> None:
        """Stores one image; raises on failure (the worker retries, then releases the job)."""
        ...
