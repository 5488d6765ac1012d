"""The rendering settings a loaded pipeline gets: scheduler, attention, memory layout,
fused projections, TF32, and torch.compile with its cache on the model volume.

Each is a setting (docs/diffusers.md gives the measured or published reason for
its default):

    SDQ_SCHEDULER       dpmpp-2m-karras: DPM-Solver++ (2M, Karras sigmas) at 25 steps
    SDQ_SDPA            PyTorch's fused scaled-dot-product attention
    SDQ_CHANNELS_LAST   NHWC layout for the UNet's and the VAE's convolutions
    SDQ_FUSE_QKV        one matmul for Q, K and V in every attention block
    SDQ_TF32            TF32 tensor cores for what still runs in float32 (CUDA)
    SDQ_COMPILE         torch.compile of the UNet and the VAE decoder (a mode, or off)

With SDQ_COMPILE every shape a job can have (the four sizes x every batch size
up to SDQ_BATCH_SIZE) is compiled by `warm_up` before the worker claims its
first job, so no job waits for a compilation; the compiled kernels go to
TORCHINDUCTOR_CACHE_DIR (set beside the model when unset: HF_HOME/torchinductor,
or <model folder>/torchinductor), so a restarted worker is warm in seconds.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import torch

from broker.images import SIZES

log = logging.getLogger(__name__)

# torch.compile's backend: inductor in production; tests on the CPU use "aot_eager"
# (inductor's C++ build takes a minute per shape there), patched in.
COMPILE_BACKEND = "inductor"


def scheduler_for(name: str, current: Any) -> Any:
    """The scheduler SDQ_SCHEDULER names, built from the model's own config."""
    from diffusers import (
        DDIMScheduler,
        DPMSolverMultistepScheduler,
        EulerAncestralDiscreteScheduler,
    )

    config = current.config
    if name == "model":
        return current
    if name in ("dpmpp-2m-karras", "dpmpp-2m"):
        return DPMSolverMultistepScheduler.from_config(  # type: ignore[no-untyped-call]
            config,
            algorithm_type="dpmsolver++",
            solver_order=2,
            use_karras_sigmas=name.endswith("karras"),
        )
    if name == "euler-a":
        return EulerAncestralDiscreteScheduler.from_config(config)  # type: ignore[no-untyped-call]
    if name == "ddim":
        return DDIMScheduler.from_config(config)  # type: ignore[no-untyped-call]
    raise ValueError(f"unknown SDQ_SCHEDULER {name!r}")


def apply(pipeline: Any, options: Any, device: str) -> list[str]:
    """Applies the options to a loaded pipeline; returns what was applied (for the log).
    `options` is a PipelineSpec (duck-typed: this module knows no settings class)."""
    applied = [f"scheduler {options.scheduler}"]
    pipeline.scheduler = scheduler_for(options.scheduler, pipeline.scheduler)
    on_cuda = torch.device(device).type == "cuda"
    if options.tf32 and on_cuda:
        torch.backends.cuda.matmul.allow_tf32 = True
        torch.backends.cudnn.allow_tf32 = True
        applied.append("tf32")
    if options.attention_slicing:
        pipeline.enable_attention_slicing()  # its own processors: no SDPA, no fused QKV
        applied.append("attention slicing")
    else:
        applied += _attention(pipeline, options)
    if options.channels_last:
        pipeline.unet.to(memory_format=torch.channels_last)
        pipeline.vae.to(memory_format=torch.channels_last)
        applied.append("channels_last")
    if options.compile != "off":
        set_compile_cache(options.model)
        _compile(pipeline, options.compile)
        applied.append(f"torch.compile {options.compile} ({COMPILE_BACKEND})")
    return applied


def _attention(pipeline: Any, options: Any) -> list[str]:
    from diffusers.models.attention_processor import AttnProcessor, AttnProcessor2_0

    if not options.sdpa:
        pipeline.unet.set_attn_processor(AttnProcessor())
        pipeline.vae.set_attn_processor(AttnProcessor())
        return ["classic attention"]
    # diffusers leaves its processors' constructors unannotated
    pipeline.unet.set_attn_processor(AttnProcessor2_0())  # type: ignore[no-untyped-call]
    pipeline.vae.set_attn_processor(AttnProcessor2_0())  # type: ignore[no-untyped-call]
    if not options.fuse_qkv:
        return ["sdpa"]
    pipeline.fuse_qkv_projections()  # fused processors, SDPA inside
    return ["sdpa", "fused qkv"]


def set_compile_cache(model: str) -> str:
    """TORCHINDUCTOR_CACHE_DIR beside the model unless set; returns the folder used."""
    folder = os.environ.get("TORCHINDUCTOR_CACHE_DIR")
    if not folder:
        home = os.environ.get("HF_HOME")
        if home:
            folder = str(Path(home) / "torchinductor")
        elif Path(model).expanduser().is_dir():
            folder = str(Path(model).expanduser() / "torchinductor")
        else:
            folder = str(Path("~/.cache/huggingface/torchinductor").expanduser())
        os.environ["TORCHINDUCTOR_CACHE_DIR"] = folder
    Path(folder).mkdir(parents=True, exist_ok=True)
    return folder


def _compile(pipeline: Any, mode: str) -> None:
    import torch._dynamo.config as dynamo

    # Static shapes: one graph per shape (4 sizes x every batch size), each specialised
    # (and, with CUDA graphs, recorded) for its shape; warm_up compiles them all.
    dynamo.cache_size_limit = max(dynamo.cache_size_limit, 64)
    dynamo.accumulated_cache_size_limit = max(dynamo.accumulated_cache_size_limit, 512)
    options: dict[str, Any] = {"mode": mode, "backend": COMPILE_BACKEND, "dynamic": False}
    pipeline.unet = torch.compile(pipeline.unet, **options)
    pipeline.vae.decode = torch.compile(pipeline.vae.decode, **options)


def warm_up_shapes(
    batch_size: int, sizes: tuple[tuple[int, int], ...] = SIZES
) -> Iterator[tuple[int, int, int]]:
    """(width, height, images) of every pipeline call a job can make."""
    for width, height in sizes:
        for images in range(1, batch_size + 1):
            yield width, height, images
