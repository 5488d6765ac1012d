"""A fast renderer for demos and tests: an image of the exact size, no model.

It draws a grid, "TEST PATTERN" and the job's prompt, index and token, so an
image on screen is never mistaken for a real render, and whoever sees it can
tell which job and which image it belongs to. The seed goes into the PNG's
text metadata, as a real render would record it.

With a simulated render time (SDQ_TEST_PATTERN_MS_PER_IMAGE, `sdq up` sets
1000) it also simulates denoising steps: it sleeps step by step (no GIL held,
as a GPU would not) and reports each step, with a preview that turns from
noise into the pattern, so the quick start shows step progress and previews.
"""

from __future__ import annotations

import textwrap
import time

from PIL import Image, ImageDraw, ImageFont

from gpu_worker.encode import small
from gpu_worker.renderers.base import (
    PreviewSource,
    RenderedImage,
    RenderRequest,
    StepHook,
    no_hook,
)

_GRID = 64


class TestPatternRenderer:
    name = "test-pattern"
    __test__ = False  # not a pytest test class, despite the name

    def __init__(self, ms_per_image: int = 0, steps: int = 25) -> None:
        self.ms_per_image = ms_per_image
        self.steps = max(1, steps)
        self._font = ImageFont.load_default(size=18)
        self._big = ImageFont.load_default(size=40)

    def render(self, request: RenderRequest, on_step: StepHook = no_hook) -> list[RenderedImage]:
        images = [
            RenderedImage(self._one(request, index, seed), self._text(request, index, seed))
            for index, seed in zip(request.indexes, request.seeds, strict=True)
        ]
        step_s = self.ms_per_image * len(images) / 1000 / self.steps
        for step in range(1, self.steps + 1):
            if step_s:
                time.sleep(step_s)  # stands in for GPU time
            if images:
                on_step(step, self.steps, _preview(images[0].image, step / self.steps))
        return images

    def _one(self, request: RenderRequest, index: int, seed: int) -> Image.Image:
        width, height = request.width, request.height
        hue = int(request.token[:6], 16)
        background = (hue >> 16 & 0x7F, hue >> 8 & 0x7F, hue & 0x7F)
        image = Image.new("RGB", (width, height), background)
        draw = ImageDraw.Draw(image)
        for x in range(0, width, _GRID):
            draw.line([(x, 0), (x, height)], fill=(90, 90, 90))
        for y in range(0, height, _GRID):
            draw.line([(0, y), (width, y)], fill=(90, 90, 90))
        draw.rectangle([0, 0, width - 1, height - 1], outline=(255, 255, 0), width=4)
        draw.text((24, 20), "TEST PATTERN", font=self._big, fill=(255, 255, 0))
        lines = [
            f"image {index + 1} (index {index})  {width}x{height}",
            f"token {request.token}",
            f"seed {seed}",
            "",
            *textwrap.wrap(request.prompt, width=max(20, width // 11))[:12],
        ]
        draw.multiline_text((24, 80), "\n".join(lines), font=self._font, fill=(255, 255, 255))
        return image

    def _text(self, request: RenderRequest, index: int, seed: int) -> dict[str, str]:
        return {
            "sdq:renderer": self.name,
            "sdq:token": request.token,
            "sdq:index": str(index),
            "sdq:seed": str(seed),
            "sdq:prompt": request.prompt,
        }


def _preview(final: Image.Image, done: float) -> PreviewSource:
    """A preview source: the pattern emerging from noise as the steps go."""

    def draw() -> Image.Image:
        picture = small(final)
        noise = Image.effect_noise(picture.size, 64).convert("RGB")
        return Image.blend(noise, picture, done)

    return draw
