"""Loads the Stable Diffusion pipeline: once per process, on the best device there is.

Loading takes seconds to minutes (weights to the GPU, a download on first use),
so the pipeline is loaded before the worker claims anything, and kept for the
life of the process: `load_pipeline` returns the same object for the same
spec however often a renderer is built.

The model is a local folder (what `save_pretrained` writes: `model_index.json`
and one subfolder per component) or a Hugging Face model id, found in the
cache under HF_HOME or downloaded; with HF_HUB_OFFLINE=1 nothing is
downloaded and a model missing from the cache is an error.
"""

from __future__ import annotations

import logging
import os
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from diffusers import AutoPipelineForText2Image

from gpu_worker.errors import ModelLoadError
from gpu_worker.renderers import diffusers_options
from gpu_worker.settings import WorkerSettings

log = logging.getLogger(__name__)

__all__ = ["ModelLoadError", "PipelineSpec", "load_pipeline"]

_DTYPES = {"float16": torch.float16, "bfloat16": torch.bfloat16, "float32": torch.float32}


@dataclass(frozen=True, slots=True)
class PipelineSpec:
    """Everything that decides which pipeline object a renderer gets."""

    model: str  # a local folder or a model id
    device: str  # a torch device, resolved: "cuda", "cuda:1", "cpu"
    dtype: str  # a key of _DTYPES, resolved
    safety_checker: bool
    attention_slicing: bool
    scheduler: str = "dpmpp-2m-karras"  # the rendering options (diffusers_options.py)
    sdpa: bool = True
    channels_last: bool = True
    fuse_qkv: bool = True
    tf32: bool = True
    compile: str = "off"

    @classmethod
    def from_settings(cls, settings: WorkerSettings) -> PipelineSpec:
        device = resolve_device(settings.device)
        return cls(
            model=settings.model,
            device=device,
            dtype=resolve_dtype(settings.dtype, device),
            safety_checker=settings.safety_checker,
            attention_slicing=settings.attention_slicing,
            scheduler=settings.scheduler,
            sdpa=settings.sdpa,
            channels_last=settings.channels_last,
            fuse_qkv=settings.fuse_qkv,
            tf32=settings.tf32,
            compile=settings.compile,
        )


def resolve_device(requested: str | None) -> str:
    """SDQ_DEVICE, or CUDA when torch sees a GPU, else the CPU."""
    if not requested:
        return "cuda" if torch.cuda.is_available() else "cpu"
    try:
        device = torch.device(requested)
    except RuntimeError as exc:
        raise ModelLoadError(f"SDQ_DEVICE={requested!r} is not a torch device: {exc}") from exc
    if device.type == "cuda" and not torch.cuda.is_available():
        raise ModelLoadError(
            f"SDQ_DEVICE={requested!r} but torch {torch.__version__} sees no CUDA device "
            f"(built for CUDA {torch.version.cuda or 'none: a CPU-only build'})"
        )
    return requested


def resolve_dtype(requested: str, device: str) -> str:
    """float16 on CUDA and float32 elsewhere, unless SDQ_DTYPE says otherwise."""
    on_cuda = torch.device(device).type == "cuda"
    if requested == "auto":
        return "float16" if on_cuda else "float32"
    if requested == "float16" and not on_cuda:
        raise ModelLoadError(
            f"SDQ_DTYPE=float16 needs a CUDA device (device is {device}): "
            "use float32 or bfloat16 on the CPU"
        )
    return requested


def model_source(model: str) -> str:
    """The folder or model id to load; a path that is not a model folder is refused here."""
    path = Path(model).expanduser()
    if path.is_dir():
        if not (path / "model_index.json").is_file():
            raise ModelLoadError(
                f"SDQ_MODEL={model!r} is a folder but not a diffusers model: it has no "
                "model_index.json (a folder written by pipeline.save_pretrained has one)"
            )
        return str(path)
    if path.is_absolute() or model.startswith((".", "~")) or path.exists():
        raise ModelLoadError(f"SDQ_MODEL={model!r}: no such model folder")
    return model


_loaded: dict[PipelineSpec, Any] = {}
_lock = threading.Lock()


def load_pipeline(spec: PipelineSpec) -> Any:
    """The pipeline for `spec`, loaded on first use and shared after that."""
    with _lock:
        pipeline = _loaded.get(spec)
        if pipeline is None:
            pipeline = _load(spec)
            _loaded[spec] = pipeline
        return pipeline


def _load(spec: PipelineSpec) -> Any:
    source = model_source(spec.model)
    options: dict[str, Any] = {"dtype": _DTYPES[spec.dtype]}
    if not spec.safety_checker:
        options.update(safety_checker=None, requires_safety_checker=False)
    if _offline():
        # huggingface_hub reads HF_HUB_OFFLINE once, at import; asking here holds whenever set
        options["local_files_only"] = True
    started = time.perf_counter()
    try:
        # diffusers leaves from_pretrained unannotated
        pipeline = AutoPipelineForText2Image.from_pretrained(  # type: ignore[no-untyped-call]
            source, **options
        )
    except (OSError, ValueError) as exc:
        raise ModelLoadError(f"cannot load SDQ_MODEL={spec.model!r}: {exc}{_hint(source)}") from exc
    pipeline.to(spec.device)
    pipeline.set_progress_bar_config(disable=True)  # the worker logs progress itself
    applied = diffusers_options.apply(pipeline, spec, spec.device)
    log.info(
        "model %s (%s) loaded on %s as %s in %.1f s: %s",
        spec.model, type(pipeline).__name__, spec.device, spec.dtype,
        time.perf_counter() - started, ", ".join(applied),
    )  # fmt: skip
    _state_safety_checker(spec, pipeline)
    return pipeline


def _state_safety_checker(spec: PipelineSpec, pipeline: Any) -> None:
    """Says in the log, once, whether images are filtered."""
    checker = getattr(pipeline, "safety_checker", None)
    if not spec.safety_checker:
        log.warning("safety checker off (SDQ_SAFETY_CHECKER=false): images are not filtered")
    elif checker is None:
        log.warning("model %s has no safety checker: images are not filtered", spec.model)
    else:
        log.info("safety checker on: images it flags are stored black")


def _offline() -> bool:
    return os.environ.get("HF_HUB_OFFLINE", "").strip().lower() in {"1", "true", "yes", "on"}


def _hint(source: str) -> str:
    if Path(source).is_dir():
        return ""
    if _offline():
        return (
            " (HF_HUB_OFFLINE is set: the model must already be in the Hugging Face cache "
            "under HF_HOME, or SDQ_MODEL must name a local folder)"
        )
    return " (a model id is downloaded into HF_HOME on first use: check the id and the network)"
