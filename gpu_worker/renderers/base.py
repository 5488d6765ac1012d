"""What a renderer is: prompt and size in, images out, one call per batch.

A renderer returns pixels and their text metadata, not PNG bytes: the worker
encodes them on its encode/upload pool while the GPU renders the next batch
(gpu_worker/encode.py). During a call it reports each denoising step to the
worker's StepHook, which counts progress, may ask for a preview of the image
being drawn, and stops the render (by raising RenderInterrupted) once the job
is cancelled or its lease is lost.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Protocol, runtime_checkable

from PIL import Image


@dataclass(frozen=True, slots=True)
class RenderRequest:
    token: str
    prompt: str
    width: int
    height: int
    indexes: Sequence[int]  # which images of the job (0-based) this call renders
    seeds: Sequence[int]  # one seed per index, recorded with the job


@dataclass(frozen=True, slots=True)
class RenderedImage:
    image: Image.Image  # RGB, exactly width x height
    text: Mapping[str, str]  # PNG text chunks (sdq:renderer, sdq:seed, ...)


class RenderInterrupted(Exception):  # a stop, not an error
    """Raised by the StepHook to end a render at once (cancelled, lease lost)."""


PreviewSource = Callable[[], Image.Image]  # a small image of the batch's first image


class StepHook(Protocol):
    def __call__(self, done: int, total: int, preview: PreviewSource | None = None) -> None:
        """Called after each denoising step of a batch: `done` of `total` steps.
        Calls `preview()` only when it wants a preview. Raises RenderInterrupted
        to stop the render now."""
        ...


def no_hook(done: int, total: int, preview: PreviewSource | None = None) -> None:
    """A StepHook that counts nothing and never stops a render."""


class Renderer(Protocol):
    name: str

    def render(self, request: RenderRequest, on_step: StepHook = no_hook) -> list[RenderedImage]:
        """One image per index, in order. Blocking (GPU work): run it off the event loop."""
        ...


@runtime_checkable
class WarmsUp(Protocol):
    """A renderer with work to do once before the first job (compiling its model)."""

    def warm_up(self) -> None: ...
