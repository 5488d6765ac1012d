"""Every rendering option on the tiny CPU pipeline, loaded through build_renderer as in
production: the schedulers, SDPA and fused QKV projections, channels_last, TF32,
torch.compile with its warm-up over every shape and its cache beside the model,
and the step callback (progress, previews, an interrupt within one step)."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

import pytest
import torch
from PIL import Image

from gpu_worker.renderers import diffusers_options
from gpu_worker.renderers.base import RenderInterrupted, StepHook
from gpu_worker.renderers.diffusers import DiffusersRenderer, latent_preview
from gpu_worker.renderers.diffusers_loader import PipelineSpec
from gpu_worker.renderers.diffusers_options import warm_up_shapes
from tests.gpu_worker.renderers.test_diffusers_renderer import renderer_for, request
from tests.gpu_worker.renderers.tiny_pipeline import build_tiny_pipeline


def processors(renderer: DiffusersRenderer) -> set[str]:
    return {type(p).__name__ for p in renderer.pipeline.unet.attn_processors.values()}


@pytest.mark.parametrize(
    ("name", "cls", "karras"),
    [
        ("dpmpp-2m-karras", "DPMSolverMultistepScheduler", True),
        ("dpmpp-2m", "DPMSolverMultistepScheduler", False),
        ("euler-a", "EulerAncestralDiscreteScheduler", None),
        ("ddim", "DDIMScheduler", None),
        ("model", "DDIMScheduler", None),  # what the tiny model was saved with
    ],
)
def test_options_scheduler_is_the_one_named_and_renders(
    tiny_model: Path, name: str, cls: str, karras: bool | None
) -> None:
    renderer = renderer_for(tiny_model, scheduler=name)

    scheduler = renderer.pipeline.scheduler
    assert type(scheduler).__name__ == cls
    if karras is not None:
        assert scheduler.config.use_karras_sigmas is karras
        assert scheduler.config.algorithm_type == "dpmsolver++"
        assert scheduler.config.solver_order == 2
    [image] = renderer.render(request([0]))
    assert image.image.size == (64, 64) and image.text["sdq:scheduler"] == name


def test_options_default_is_dpm_solver_karras_at_25_steps(tiny_model: Path) -> None:
    from gpu_worker.settings import WorkerSettings

    settings = WorkerSettings()
    assert (settings.scheduler, settings.steps) == ("dpmpp-2m-karras", 25)
    assert (settings.sdpa, settings.fuse_qkv, settings.channels_last, settings.tf32) == (
        True,
        True,
        True,
        True,
    )
    assert settings.compile == "off"


def test_options_sdpa_with_fused_qkv_projections(tiny_model: Path) -> None:
    fused = renderer_for(tiny_model, sdpa=True, fuse_qkv=True)
    plain = renderer_for(tiny_model, sdpa=True, fuse_qkv=False)
    classic = renderer_for(tiny_model, sdpa=False)

    assert processors(fused) == {"FusedAttnProcessor2_0"}
    assert hasattr(
        fused.pipeline.unet.down_blocks[1].attentions[0].transformer_blocks[0].attn1, "to_qkv"
    )
    assert processors(plain) == {"AttnProcessor2_0"}
    assert processors(classic) == {"AttnProcessor"}
    for renderer in (fused, plain, classic):
        assert len(renderer.render(request([0]))) == 1


def test_options_attention_slicing_keeps_its_own_processors(tiny_model: Path) -> None:
    renderer = renderer_for(tiny_model, attention_slicing=True)

    assert processors(renderer) == {"SlicedAttnProcessor"}
    assert len(renderer.render(request([0]))) == 1


def test_options_channels_last_memory_layout(tiny_model: Path) -> None:
    nhwc = renderer_for(tiny_model, channels_last=True)
    nchw = renderer_for(tiny_model, channels_last=False)

    weight = nhwc.pipeline.unet.conv_in.weight
    assert weight.is_contiguous(memory_format=torch.channels_last)
    assert nhwc.pipeline.vae.decoder.conv_in.weight.is_contiguous(memory_format=torch.channels_last)
    assert not nchw.pipeline.unet.conv_in.weight.is_contiguous(memory_format=torch.channels_last)
    assert len(nhwc.render(request([0]))) == 1


def test_options_tf32_is_turned_on_for_cuda_only(tiny_model: Path) -> None:
    renderer = renderer_for(tiny_model)
    before = (torch.backends.cuda.matmul.allow_tf32, torch.backends.cudnn.allow_tf32)
    spec = PipelineSpec(str(tiny_model), "cuda", "float16", False, False, tf32=True)
    try:
        torch.backends.cuda.matmul.allow_tf32 = torch.backends.cudnn.allow_tf32 = False
        on_cpu = diffusers_options.apply(renderer.pipeline, renderer.spec, "cpu")
        assert "tf32" not in on_cpu and not torch.backends.cuda.matmul.allow_tf32
        on_cuda = diffusers_options.apply(renderer.pipeline, spec, "cuda")
        assert "tf32" in on_cuda
        assert torch.backends.cuda.matmul.allow_tf32 and torch.backends.cudnn.allow_tf32
    finally:
        torch.backends.cuda.matmul.allow_tf32, torch.backends.cudnn.allow_tf32 = before


@pytest.mark.slow  # about 15 s of tracing on the CPU
def test_options_compile_warms_up_every_shape_then_renders_without_compiling(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import torch._dynamo

    monkeypatch.delenv("TORCHINDUCTOR_CACHE_DIR", raising=False)
    monkeypatch.delenv("HF_HOME", raising=False)
    model = build_tiny_pipeline(tmp_path)
    compiled: list[str] = []

    def backend(gm: torch.fx.GraphModule, inputs: list[Any], **options: Any) -> Any:
        """aot_eager (inductor's C++ build takes a minute per shape here), counted."""
        compiled.append(str(getattr(inputs[0], "shape", inputs[0])) if inputs else "")
        return torch._dynamo.backends.registry.lookup_backend("aot_eager")(gm, inputs)

    torch._dynamo.reset()
    monkeypatch.setattr(diffusers_options, "COMPILE_BACKEND", backend)
    renderer = renderer_for(model, compile="max-autotune-no-cudagraphs", batch_size=2)
    assert isinstance(renderer.pipeline.unet, torch._dynamo.eval_frame.OptimizedModule)
    assert Path(diffusers_options.os.environ["TORCHINDUCTOR_CACHE_DIR"]) == model / "torchinductor"

    renderer.warm_up([(64, 64, 1), (64, 64, 2)])
    warmed = len(compiled)
    assert warmed >= 2  # one graph per shape at least (UNet, VAE decoder)
    images = renderer.render(request([0, 1]))
    renderer.render(request([2]))

    assert len(compiled) == warmed  # both batch sizes were compiled before the first job
    assert [image.image.size for image in images] == [(64, 64), (64, 64)]
    torch._dynamo.reset()


def test_options_warm_up_covers_the_four_sizes_at_every_batch_size() -> None:
    shapes = list(warm_up_shapes(3))

    assert len(shapes) == 12
    assert {(w, h) for w, h, _ in shapes} == {(1024, 576), (768, 576), (576, 768), (576, 576)}
    assert {n for *_, n in shapes} == {1, 2, 3}


def test_options_the_worker_warms_up_before_it_claims(monkeypatch: pytest.MonkeyPatch) -> None:
    from gpu_worker.settings import WorkerSettings
    from sdq import worker as process

    calls: list[str] = []

    class Warming:
        name = "warming"

        def render(self, *args: Any) -> list[Any]:
            return []

        def warm_up(self) -> None:
            calls.append("warm_up")

    class Built:
        renderer = Warming()

    monkeypatch.setattr(process, "build_worker", lambda settings: calls.append("build") or Built())

    assert process._start(WorkerSettings()) is not None  # type: ignore[comparison-overlap]
    assert calls == ["build", "warm_up"]


def test_callback_reports_every_step_with_a_small_preview(tiny_model: Path) -> None:
    renderer = renderer_for(tiny_model, steps=3, batch_size=2)
    seen: list[tuple[int, int, tuple[int, int]]] = []

    def on_step(done: int, total: int, preview: Any = None) -> None:
        seen.append((done, total, preview().size))

    renderer.render(request([0, 1, 2], width=72, height=96), on_step)

    # 3 images, calls of 2 and 1: steps counted in images x steps, of 3 x 3
    assert [(done, total) for done, total, _ in seen] == [
        (2, 9),
        (4, 9),
        (6, 9),
        (7, 9),
        (8, 9),
        (9, 9),
    ]
    scale = renderer.pipeline.vae_scale_factor  # 2 for the tiny VAE, 8 for SD 1.x
    assert {size for *_, size in seen} == {(72 // scale * 2, 96 // scale * 2)}  # latents x 2


def test_callback_interrupt_stops_the_pipeline_at_the_next_step(tiny_model: Path) -> None:
    renderer = renderer_for(tiny_model, steps=5)
    unet_calls: list[int] = []
    hook = renderer.pipeline.unet.register_forward_pre_hook(lambda *_: unet_calls.append(1))

    def stop_after_one(done: int, total: int, preview: Any = None) -> None:
        raise RenderInterrupted("cancelled")

    try:
        with pytest.raises(RenderInterrupted):
            renderer.render(request([0]), stop_after_one)
    finally:
        hook.remove()
    assert len(unet_calls) == 1  # one step, then nothing: no further step, no VAE decode


def test_latent_preview_is_a_picture_twice_the_latent_size() -> None:
    latents = torch.zeros(4, 9, 12)

    picture = latent_preview(latents)

    assert isinstance(picture, Image.Image) and picture.size == (24, 18)
    assert picture.getpixel((0, 0)) == (127, 127, 127)  # zero latents: mid grey


async def test_callback_runs_off_the_event_loop(tiny_model: Path) -> None:
    """The renderer is blocking; the worker runs it in its render thread."""
    renderer = renderer_for(tiny_model)
    steps: list[int] = []
    hook: StepHook = lambda done, total, preview=None: steps.append(done)  # noqa: E731
    await asyncio.to_thread(renderer.render, request([0]), hook)
    assert steps == [1, 2]
