"""`python -m bench.gpu`: seconds per image on a GPU, as the worker renders.

The Stable Diffusion 1.5 architecture with random weights (bench/sd15.py), fp16
on CUDA, with the worker's rendering settings (its defaults: DPM-Solver++ 2M
Karras at SDQ_STEPS, SDPA, fused QKV, channels_last, TF32), rendered through the
worker's own DiffusersRenderer (text encoder, every denoising step, VAE decode;
not the PNG encoding, which runs beside the GPU). For each of the four sizes x
batch sizes 1, 2, 4, 8, eager and compiled (torch.compile, --compile-mode, after
the worker's warm-up of every shape): seconds per image (median of --repeat
calls), seconds per call, and the peak GPU memory of the call.

`--tiny` runs the same command on the CPU with the test suite's tiny configs (a
few shapes, 2 steps, torch.compile through aot_eager: inductor's C++ build takes
a minute per shape on a CPU), so the command keeps working where no GPU is.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

import torch

from bench import sd15
from gpu_worker.renderers import diffusers_options
from gpu_worker.renderers.base import RenderRequest
from gpu_worker.renderers.diffusers import DiffusersRenderer
from gpu_worker.renderers.diffusers_loader import PipelineSpec
from gpu_worker.seeds import seed_for
from gpu_worker.settings import WorkerSettings

TOKEN = "0123456789abcdef" * 2
PROMPT = "A yellow mountain bike, children's book illustration."
SIZES = "1024x576,768x576,576x768,576x576"


@dataclass
class Row:
    mode: str
    size: str
    batch: int
    seconds: float  # per call (median)
    peak_bytes: int | None

    @property
    def per_image(self) -> float:
        return self.seconds / self.batch


def spec_for(args: argparse.Namespace, compiled: bool) -> PipelineSpec:
    defaults = WorkerSettings()
    return PipelineSpec(
        model="sd15-random-weights",
        device=args.device,
        dtype=args.dtype,
        safety_checker=False,
        attention_slicing=False,
        scheduler=defaults.scheduler,
        sdpa=defaults.sdpa,
        channels_last=defaults.channels_last,
        fuse_qkv=defaults.fuse_qkv,
        tf32=defaults.tf32,
        compile=args.compile_mode if compiled else "off",
    )


def sizes(args: argparse.Namespace) -> list[tuple[int, int]]:
    found = []
    for size in args.sizes.split(","):
        width, _, height = size.partition("x")
        scale = 8 if args.tiny else 1  # the tiny VAE halves where SD's divides by 8
        found.append((int(width) // scale, int(height) // scale))
    return found


def synchronize(device: str) -> None:
    if torch.device(device).type == "cuda":
        torch.cuda.synchronize()


def measure_mode(args: argparse.Namespace, mode: str, folder: Path) -> tuple[list[Row], float]:
    """Builds the pipeline for one mode, warms it up, times every shape."""
    dtype = {"float16": torch.float16, "bfloat16": torch.bfloat16, "float32": torch.float32}
    pipe = sd15.pipeline(folder, args.device, dtype[args.dtype], tiny=args.tiny)
    spec = spec_for(args, mode == "compiled")
    diffusers_options.apply(pipe, spec, args.device)
    batches = [int(b) for b in args.batches.split(",")]
    renderer = DiffusersRenderer(
        pipe, spec, batch_size=max(batches), steps=args.steps, guidance_scale=7.5
    )
    shapes = [(w, h, b) for w, h in sizes(args) for b in batches]
    started = time.perf_counter()
    if mode == "compiled":
        renderer.warm_up(shapes)
    else:  # eager: one call per shape too (cuDNN's algorithm choice, the allocator)
        for w, h, b in shapes:
            renderer.render(request(w, h, b))
    warm_s = time.perf_counter() - started
    rows = []
    cuda = torch.device(args.device).type == "cuda"
    for w, h, b in shapes:
        times = []
        if cuda:
            torch.cuda.reset_peak_memory_stats()
        for _ in range(args.repeat):
            synchronize(args.device)
            begun = time.perf_counter()
            renderer.render(request(w, h, b))
            synchronize(args.device)
            times.append(time.perf_counter() - begun)
        peak = torch.cuda.max_memory_allocated() if cuda else None
        label = f"{w * 8}x{h * 8}" if args.tiny else f"{w}x{h}"
        rows.append(Row(mode, label, b, statistics.median(times), peak))
    del renderer, pipe
    if cuda:
        torch.cuda.empty_cache()
    return rows, warm_s


def request(width: int, height: int, batch: int) -> RenderRequest:
    indexes = list(range(batch))
    return RenderRequest(
        TOKEN, PROMPT, width, height, indexes, [seed_for(TOKEN, i) for i in indexes]
    )


def table(rows: list[Row], warm: dict[str, float], args: argparse.Namespace) -> list[str]:
    lines = [
        f"SD 1.5 architecture, random weights, {args.dtype} on {args.device}"
        f"{' (tiny configs)' if args.tiny else ''}, {args.steps} steps "
        f"({WorkerSettings().scheduler}), guidance 7.5, median of {args.repeat}",
        f"{'mode':<9} {'size':<9} {'batch':>5} {'s/image':>8} {'s/call':>7} {'peak GiB':>9}",
    ]
    for row in rows:
        peak = "-" if row.peak_bytes is None else f"{row.peak_bytes / 2**30:.2f}"
        lines.append(
            f"{row.mode:<9} {row.size:<9} {row.batch:>5} {row.per_image:>8.3f} "
            f"{row.seconds:>7.2f} {peak:>9}"
        )
    for mode, seconds in warm.items():
        lines.append(f"{mode}: warm-up of every shape {seconds:.1f} s")
    return lines


def parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="python -m bench.gpu", description=__doc__)
    p.add_argument("--tiny", action="store_true", help="tiny configs on the CPU (tests)")
    p.add_argument("--sizes", default=SIZES)
    p.add_argument("--batches", default="1,2,4,8")
    p.add_argument("--steps", type=int, default=WorkerSettings().steps)
    p.add_argument("--modes", default="eager,compiled")
    p.add_argument("--compile-mode", default="max-autotune")
    p.add_argument("--repeat", type=int, default=3)
    p.add_argument("--device", default="cuda")
    p.add_argument("--dtype", default="float16")
    return p


def main(argv: list[str] | None = None) -> int:
    args = parser().parse_args(argv)
    if args.tiny:
        args.device, args.dtype, args.compile_mode = "cpu", "float32", "default"
        diffusers_options.COMPILE_BACKEND = "aot_eager"
        torch.set_num_threads(1)
    elif not torch.cuda.is_available():
        print("bench.gpu needs a CUDA GPU (or --tiny for the CPU check)", file=sys.stderr)
        return 2
    rows: list[Row] = []
    warm: dict[str, float] = {}
    with tempfile.TemporaryDirectory() as folder:
        for mode in args.modes.split(","):
            found, warm[mode] = measure_mode(args, mode, Path(folder))
            rows += found
    for line in table(rows, warm, args):
        print(line)
    return 0


if __name__ == "__main__":
    sys.exit(main())
