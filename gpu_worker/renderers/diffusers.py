"""The production renderer: Stable Diffusion text-to-image through `diffusers`.

Several images go through one pipeline call (SDQ_BATCH_SIZE of them): the GPU
is far better used by one batch of 4 than by 4 calls of 1. Each image gets its
own torch.Generator, seeded from its (token, index) seed, on the CPU: the
starting noise of an image then depends only on its seed, not on its place in
a batch nor on the GPU model, so an image can be rendered again from its token
and index. The seed, prompt, model and settings go into the PNG's text
metadata (the worker encodes the PNG on its pool, beside the GPU).

After every denoising step the pipeline calls back (`callback_on_step_end`):
the worker's hook counts the step, may ask for a preview (the linear
latent-to-RGB approximation below: no VAE decode, no extra weights), and raises
to stop the render at once when the job was cancelled or its lease lost.

Needs the `diffusers` extra (torch, diffusers, transformers, accelerate).
"""

from __future__ import annotations

import logging
import time
from collections.abc import Sequence
from typing import Any

import torch
from PIL import Image

from gpu_worker.renderers.base import RenderedImage, RenderRequest, StepHook, no_hook
from gpu_worker.renderers.diffusers_loader import PipelineSpec, load_pipeline
from gpu_worker.renderers.diffusers_options import warm_up_shapes
from gpu_worker.settings import WorkerSettings

log = logging.getLogger(__name__)

# Stable Diffusion 1.x latents (4 channels) -> RGB in [-1, 1], least squares against
# VAE decodes (the factors ComfyUI and others use for their previews).
SD1_LATENT_RGB = (
    (0.3512, 0.2297, 0.3227),
    (0.3250, 0.4974, 0.2350),
    (-0.2829, 0.1762, 0.2721),
    (-0.2120, -0.2616, -0.7177),
)


class RenderOutOfMemory(RuntimeError):
    """The GPU ran out of memory for one batch; the worker releases the job."""


def latent_preview(latents: torch.Tensor) -> Image.Image:
    """One image's latents (4, h/8, w/8) as a small RGB picture, twice the latent size."""
    factors = torch.tensor(SD1_LATENT_RGB, dtype=torch.float32, device=latents.device)
    rgb = latents.float().permute(1, 2, 0) @ factors
    pixels = ((rgb + 1) / 2).clamp(0, 1).mul(255).to(torch.uint8).cpu().numpy()
    picture = Image.fromarray(pixels, "RGB")
    return picture.resize((picture.width * 2, picture.height * 2), Image.Resampling.BILINEAR)


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

    def warm_up(self, shapes: Sequence[tuple[int, int, int]] | None = None) -> None:
        """With SDQ_COMPILE: compiles every shape a job can have, before the first claim
        (two steps each; the compiled kernels are cached on the model volume)."""
        if self.spec.compile == "off":
            return
        todo = list(shapes or warm_up_shapes(self.batch_size))
        started = time.perf_counter()
        for width, height, images in todo:
            self._generate("warm-up", width, height, [0] * images, no_hook, 0, images, steps=2)
        log.info(
            "compiled for %d shapes (sizes x batch sizes) in %.1f s",
            len(todo), time.perf_counter() - started,
        )  # fmt: skip

    def render(self, request: RenderRequest, on_step: StepHook = no_hook) -> list[RenderedImage]:
        """Images in the order of request.indexes, in pipeline calls of at most batch_size."""
        if len(request.seeds) != len(request.indexes):
            raise ValueError(
                f"{len(request.indexes)} indexes but {len(request.seeds)} seeds: one seed per image"
            )
        images = list(zip(request.indexes, request.seeds, strict=True))
        rendered: list[RenderedImage] = []
        for start in range(0, len(images), self.batch_size):
            batch = images[start : start + self.batch_size]
            pictures, flagged = self._generate(
                request.prompt, request.width, request.height,
                [seed for _, seed in batch], on_step, start, len(images),
            )  # fmt: skip
            for (index, seed), picture, hit in zip(batch, pictures, flagged, strict=True):
                if hit:
                    log.warning(
                        "job %s: image %d was flagged by the safety checker and is stored black",
                        request.token[:8],
                        index,
                    )
                rendered.append(RenderedImage(picture, self._text(request, index, seed)))
        return rendered

    def _generate(
        self,
        prompt: str,
        width: int,
        height: int,
        seeds: Sequence[int],
        on_step: StepHook,
        before: int,
        of: int,
        steps: int | None = None,
    ) -> tuple[list[Image.Image], list[bool]]:
        """One pipeline call: len(seeds) images of one prompt, and which ones were flagged.
        `before` of the request's `of` images were rendered by earlier calls."""
        steps = steps or self.steps
        generators = [torch.Generator(device="cpu").manual_seed(seed) for seed in seeds]

        def step_end(pipe: Any, step: int, timestep: Any, tensors: dict[str, Any]) -> Any:
            latents = tensors["latents"]
            done = before * steps + len(seeds) * (step + 1)
            on_step(done, of * steps, lambda: latent_preview(latents[0]))
            return tensors

        try:
            with torch.inference_mode():
                output = self.pipeline(
                    prompt=prompt,
                    width=width,
                    height=height,
                    num_inference_steps=steps,
                    guidance_scale=self.guidance_scale,
                    num_images_per_prompt=len(seeds),
                    generator=generators,
                    output_type="pil",
                    callback_on_step_end=step_end,
                )
        except torch.OutOfMemoryError as exc:
            if torch.cuda.is_available():
                torch.cuda.empty_cache()  # so the next job starts from a clean slate
            raise RenderOutOfMemory(
                f"out of memory rendering {len(seeds)} image(s) of "
                f"{width}x{height} on {self.spec.device}: lower "
                f"SDQ_BATCH_SIZE (now {self.batch_size}) or set SDQ_ATTENTION_SLICING=true"
            ) from exc
        images: list[Image.Image] = output.images
        # None when the pipeline has no safety checker (or it is off)
        flagged = getattr(output, "nsfw_content_detected", None) or [False] * len(images)
        return images, [bool(hit) for hit in flagged]

    def _text(self, request: RenderRequest, index: int, seed: int) -> dict[str, str]:
        return {
            "sdq:renderer": self.name,
            "sdq:token": request.token,
            "sdq:index": str(index),
            "sdq:seed": str(seed),
            "sdq:prompt": request.prompt,
            "sdq:model": self.spec.model,
            "sdq:steps": str(self.steps),
            "sdq:scheduler": self.spec.scheduler,
            "sdq:guidance_scale": str(self.guidance_scale),
        }
