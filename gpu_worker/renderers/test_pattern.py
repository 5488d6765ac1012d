"""A fast renderer for demos and tests: an image of the exact size, no model.

It draws a grid, "TEST PATTERN" and the job's prompt, index and token, so an
image on screen is never mistaken for a real render, and whoever sees it can
tell which job and which image it belongs to. The seed goes into the PNG's
text metadata, as a real render would record it.
"""

from __future__ import annotations

import io
import textwrap
import time

from PIL import Image, ImageDraw, ImageFont
from PIL.PngImagePlugin import PngInfo

from gpu_worker.renderers.base import RenderRequest

_GRID = 64


class TestPatternRenderer:
    name = "test-pattern"
    __test__ = False  # not a pytest test class, despite the name

    def __init__(self, ms_per_image: int = 0) -> None:
        self.ms_per_image = ms_per_image
        self._font = ImageFont.load_default(size=18)
        self._big = ImageFont.load_default(size=40)

    def render(self, request: RenderRequest) -> list[bytes]:
        images = []
        for index, seed in zip(request.indexes, request.seeds, strict=True):
            if self.ms_per_image:
                time.sleep(self.ms_per_image / 1000)  # stands in for GPU time
            images.append(self._one(request, index, seed))
        return images

    def _one(self, request: RenderRequest, index: int, seed: int) -> bytes:
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
        info = PngInfo()
        info.add_text("sdq:renderer", self.name)
        info.add_text("sdq:token", request.token)
        info.add_text("sdq:index", str(index))
        info.add_text("sdq:seed", str(seed))
        info.add_text("sdq:prompt", request.prompt)
        out = io.BytesIO()
        image.save(out, format="PNG", pnginfo=info)
        return out.getvalue()
