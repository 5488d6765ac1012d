"""What a renderer is: prompt and size in, PNG bytes out."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Protocol


@dataclass(frozen=True, slots=True)
class RenderRequest:
    token: str
    prompt: str
    width: int
    height: int
    indexes: Sequence[int]  # which images of the job (0-based) this call renders
    seeds: Sequence[int]  # one seed per index, recorded with the job


class Renderer(Protocol):
    name: str

    def render(self, request: RenderRequest) -> list[bytes]:
        """PNG bytes, one per index. Blocking (GPU work): run it off the event loop."""
        ...
