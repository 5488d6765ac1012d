"""The production renderer: Stable Diffusion text-to-image through `diffusers`.

Several images go through one pipeline call (SDQ_BATCH_SIZE of them): the GPU
is far better used by one batch of 4 than by 4 calls of 1. Each image gets its
own torch.Generator, seeded from its (token, index) seed, on the CPU: the
starting noise of an image then depends only on its seed, not on its place in
a batch nor on the GPU model, so an image can be rendered again from its token
and index. The seed, prompt, model and settings go into the PNG's text
metadata.

Needs the `diffusers` extra (torch, diffusers, transformers, accelerate).
"""

from __future__ import annotations

import io
import logging
from collections.abc import Sequence
from typing import Any

import torch
from PIL import Image
from PIL.PngImagePlugin import PngInfo

from gpu_worker.renderers.base import RenderRequest
from gpu_worker.renderers.diffusers_loader import PipelineSpec, load_pipeline
from gpu_worker.settings import WorkerSettings

log = logging.getLogger(__name__)


class RenderOutOfMemory(RuntimeError):
    """The GPU ran out of memory for one batch; the worker releases the job."""


class DiffusersRenderer:
    name = "diffusers"

    def __init__(
        self,
        pipeline: Any,
        spec: PipelineSpec,
        *,
        batch_size: int,
        steps: int,
        guidance_scale: float,
    ) -> None:
        if batch_size < 1 or steps < 1:
            raise ValueError("batch_size and steps must be at least 1")
        self.pipeline = pipeline
        self.spec = spec
        self.batch_size = batch_size
        self.steps = steps
        self.guidance_scale = guidance_scale

    @classmethod
    def from_settings(cls, settings: WorkerSettings) -> DiffusersRenderer:
        """Loads the model (once per process) as SDQ_MODEL, SDQ_DEVICE and SDQ_DTYPE say."""
        spec = PipelineSpec.from_settings(settings)
        return cls(
            load_pipeline(spec),
            spec,
            batch_size=settings.batch_size,
            steps=settings.steps,
            guidance_scale=settings.guidance_scale,
        )

    def render(self, request: RenderRequest) -> list[bytes]:
        """PNGs in the order of request.indexes, in pipeline calls of at most batch_size."""
        if len(request.seeds) != len(request.indexes):
            raise ValueError(
                f"{len(request.indexes)} indexes but {len(request.seeds)} seeds: one seed per image"
            )
        images = list(zip(request.indexes, request.seeds, strict=True))
        pngs: list[bytes] = []
        for start in range(0, len(images), self.batch_size):
            batch = images[start : start + self.batch_size]
            rendered, flagged = self._generate(request, [seed for _, seed in batch])
            for (index, seed), image, hit in zip(batch, rendered, flagged, strict=True):
                if hit:
                    log.warning(
                        "job %s: image %d was flagged by the safety checker and is stored black",
                        request.token[:8],
                        index,
                    )
                pngs.append(self._png(request, index, seed, image))
        return pngs

    def _generate(
        self, request: RenderRequest, seeds: Sequence[int]
    ) -> tuple[list[Image.Image], list[bool]]:
        """One pipeline call: len(seeds) images of one prompt, and which ones were flagged."""
        generators = [torch.Generator(device="cpu").manual_seed(seed) for seed in seeds]
        try:
            with torch.inference_mode():
                output = self.pipeline(
                    prompt=request.prompt,
                    width=request.width,
                    height=request.height,
                    num_inference_steps=self.steps,
                    guidance_scale=self.guidance_scale,
                    num_images_per_prompt=len(seeds),
                    generator=generators,
                    output_type="pil",
                )
        except torch.OutOfMemoryError as exc:
            if torch.cuda.is_available():
                torch.cuda.empty_cache()  # so the next job starts from a clean slate
            raise RenderOutOfMemory(
                f"out of memory rendering {len(seeds)} image(s) of "
                f"{request.width}x{request.height} on {self.spec.device}: lower "
                f"SDQ_BATCH_SIZE (now {self.batch_size}) or set SDQ_ATTENTION_SLICING=true"
            ) from exc
        images: list[Image.Image] = output.images
        # None when the pipeline has no safety checker (or it is off)
        flagged = getattr(output, "nsfw_content_detected", None) or [False] * len(images)
        return images, [bool(hit) for hit in flagged]

    def _png(self, request: RenderRequest, index: int, seed: int, image: Image.Image) -> bytes:
        info = PngInfo()
        info.add_text("sdq:renderer", self.name)
        info.add_text("sdq:token", request.token)
        info.add_text("sdq:index", str(index))
        info.add_text("sdq:seed", str(seed))
        info.add_text("sdq:prompt", request.prompt)
        info.add_text("sdq:model", self.spec.model)
        info.add_text("sdq:steps", str(self.steps))
        info.add_text("sdq:guidance_scale", str(self.guidance_scale))
        out = io.BytesIO()
        image.save(out, format="PNG", pnginfo=info)
        return out.getvalue()
