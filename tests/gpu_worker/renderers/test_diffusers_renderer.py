"""The diffusers renderer, on the CPU, with a tiny random Stable Diffusion pipeline.

The pipeline is built from small configs and saved to a folder, then loaded
through the worker's own factory (build_renderer), as a real model would be.
"""

from __future__ import annotations

import asyncio
import io
import logging
import shutil
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pytest
from PIL import Image, ImageChops
from redis.asyncio import Redis

from broker.queue import Queue
from broker.states import JobState
from gpu_worker import encode
from gpu_worker.build import build_renderer, build_worker
from gpu_worker.renderers.base import RenderedImage, RenderRequest
from gpu_worker.renderers.diffusers import DiffusersRenderer
from gpu_worker.renderers.diffusers_loader import ModelLoadError
from gpu_worker.seeds import seed_for
from gpu_worker.settings import WorkerSettings
from sdq.embedded_redis import EmbeddedRedis
from tests.gpu_worker.conftest import WorkerSettingsFactory
from tests.gpu_worker.renderers.tiny_pipeline import build_tiny_pipeline

TOKEN = "0123456789abcdef0123456789abcdef"
PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"


def diffusers_settings(model: Path, **overrides: Any) -> WorkerSettings:
    values: dict[str, Any] = {
        "renderer": "diffusers",
        "model": str(model),
        "device": "cpu",
        "steps": 2,
        "batch_size": 4,
        **overrides,
    }
    return WorkerSettings(**values)


def renderer_for(model: Path, **overrides: Any) -> DiffusersRenderer:
    renderer = build_renderer(diffusers_settings(model, **overrides))
    assert isinstance(renderer, DiffusersRenderer)
    return renderer


def request(indexes: list[int], width: int = 64, height: int = 64, **fields: Any) -> RenderRequest:
    values: dict[str, Any] = {
        "token": TOKEN,
        "prompt": "a lighthouse at dusk, oil on canvas",
        "width": width,
        "height": height,
        "indexes": indexes,
        "seeds": [seed_for(TOKEN, index) for index in indexes],
        **fields,
    }
    return RenderRequest(**values)


def as_png(rendered: RenderedImage | bytes) -> bytes:
    """A rendered image as the worker stores it (PNG, its text chunks, level 4)."""
    if isinstance(rendered, bytes):
        return rendered
    return encode.png(rendered.image, rendered.text, 4)


def decoded(rendered: RenderedImage | bytes) -> Image.Image:
    image = Image.open(io.BytesIO(as_png(rendered)))
    image.load()
    return image


@contextmanager
def unet_batch_sizes(renderer: DiffusersRenderer) -> Iterator[list[int]]:
    """Records the batch dimension of every UNet call the real pipeline makes."""
    sizes: list[int] = []
    hook = renderer.pipeline.unet.register_forward_pre_hook(
        lambda _module, args: sizes.append(args[0].shape[0])
    )
    try:
        yield sizes
    finally:
        hook.remove()


@pytest.mark.parametrize(("width", "height"), [(64, 64), (72, 96)])
def test_diffusers_renderer_makes_pngs_of_the_exact_requested_size(
    tiny_model: Path, width: int, height: int
) -> None:
    pngs = renderer_for(tiny_model).render(request([0, 1], width, height))

    assert len(pngs) == 2
    for png in pngs:
        assert as_png(png).startswith(PNG_SIGNATURE)
        image = decoded(png)
        assert image.format == "PNG"
        assert image.size == (width, height)
        assert image.mode == "RGB"


def test_diffusers_renderer_splits_nine_images_at_batch_four_into_calls_of_4_4_1(
    tiny_model: Path,
) -> None:
    renderer = renderer_for(tiny_model, batch_size=4)

    with unet_batch_sizes(renderer) as sizes:
        pngs = renderer.render(request(list(range(9))))

    # 2 steps per call; classifier-free guidance doubles each batch (prompt + empty prompt)
    assert sizes == [8, 8, 8, 8, 2, 2]
    assert [decoded(png).text["sdq:index"] for png in pngs] == [str(i) for i in range(9)]


def test_diffusers_renderer_same_seeds_give_identical_bytes(tiny_model: Path) -> None:
    renderer = renderer_for(tiny_model)

    first = renderer.render(request([0, 1, 2]))
    again = renderer.render(request([0, 1, 2]))

    assert [as_png(r) for r in first] == [as_png(r) for r in again]


def test_diffusers_renderer_different_seeds_give_different_pixels(tiny_model: Path) -> None:
    renderer = renderer_for(tiny_model)
    same_index = request([0])
    other_seed = request([0], seeds=[seed_for(TOKEN, 0) + 1])

    [one] = renderer.render(same_index)
    [two] = renderer.render(other_seed)

    assert decoded(one).tobytes() != decoded(two).tobytes()


def test_diffusers_renderer_image_depends_on_its_seed_not_on_its_batch(
    tiny_model: Path,
) -> None:
    """A retried job, or one rendered at another batch size, gives the same images."""
    batched = renderer_for(tiny_model, batch_size=4).render(request([0, 1, 2, 3]))
    alone = renderer_for(tiny_model, batch_size=1).render(request([2]))

    # Batched matrix products round differently: a pixel may differ by a level or two.
    difference = ImageChops.difference(decoded(alone[0]), decoded(batched[2]))
    assert max(high for _, high in difference.getextrema()) <= 2


def test_diffusers_renderer_records_seed_prompt_and_model_in_the_png(tiny_model: Path) -> None:
    prompt = "ein Leuchtturm, 灯台, 🌅"
    [png] = renderer_for(tiny_model).render(request([7], prompt=prompt))

    text = decoded(png).text
    assert text["sdq:renderer"] == "diffusers"
    assert text["sdq:token"] == TOKEN
    assert text["sdq:index"] == "7"
    assert text["sdq:seed"] == str(seed_for(TOKEN, 7))
    assert text["sdq:prompt"] == prompt
    assert text["sdq:model"] == str(tiny_model)
    assert text["sdq:steps"] == "2"


def test_diffusers_renderer_loads_the_pipeline_once_per_process(tmp_path: Path) -> None:
    model = build_tiny_pipeline(tmp_path)
    first = renderer_for(model)
    shutil.rmtree(model)  # from here on, any reload from disk would fail

    for _ in range(3):
        assert len(first.render(request([0]))) == 1
    second = renderer_for(model)

    assert second.pipeline is first.pipeline
    assert len(second.render(request([1]))) == 1


def test_diffusers_renderer_runs_on_the_cpu_in_float32_by_default(tiny_model: Path) -> None:
    renderer = renderer_for(tiny_model, dtype="auto")

    assert (renderer.spec.device, renderer.spec.dtype) == ("cpu", "float32")
    assert str(renderer.pipeline.unet.dtype) == "torch.float32"
    assert renderer.pipeline.unet.device.type == "cpu"


def test_diffusers_renderer_refuses_float16_on_the_cpu(tiny_model: Path) -> None:
    with pytest.raises(ModelLoadError, match="float16 needs a CUDA device"):
        renderer_for(tiny_model, dtype="float16")


def test_diffusers_renderer_refuses_a_missing_model_folder(tmp_path: Path) -> None:
    with pytest.raises(ModelLoadError, match="no such model folder"):
        renderer_for(tmp_path / "not-there")


def test_diffusers_renderer_refuses_a_folder_that_is_not_a_model(tmp_path: Path) -> None:
    (tmp_path / "notes.txt").write_text("not a model")

    with pytest.raises(ModelLoadError, match=r"no model_index\.json"):
        renderer_for(tmp_path)


# diffusers 0.42 still passes an argument huggingface_hub 2.x ignores (with a warning)
@pytest.mark.filterwarnings("ignore:The `local_dir_use_symlinks` argument:UserWarning")
def test_diffusers_renderer_offline_model_id_not_in_the_cache_is_a_clear_error(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setenv("HF_HOME", str(tmp_path / "hf-home"))

    with pytest.raises(ModelLoadError, match="HF_HUB_OFFLINE is set"):
        build_renderer(WorkerSettings(renderer="diffusers", model="sdq-test/no-such-model"))


def test_diffusers_renderer_refuses_one_seed_short(tiny_model: Path) -> None:
    with pytest.raises(ValueError, match="one seed per image"):
        renderer_for(tiny_model).render(request([0, 1], seeds=[1]))


def test_diffusers_renderer_size_not_a_multiple_of_8_is_a_clear_error(tiny_model: Path) -> None:
    with pytest.raises(ValueError, match="divisible by 8"):
        renderer_for(tiny_model).render(request([0], width=60, height=64))


def test_diffusers_renderer_safety_checker_blackens_flagged_images_and_says_so(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    model = build_tiny_pipeline(tmp_path, flagging_safety_checker=True)
    renderer = renderer_for(model, safety_checker=True)

    with caplog.at_level(logging.WARNING, logger="gpu_worker.renderers.diffusers"):
        [png] = renderer.render(request([3]))

    assert decoded(png).getextrema() == ((0, 0), (0, 0), (0, 0))
    assert "image 3 was flagged by the safety checker" in caplog.text


def test_diffusers_renderer_safety_checker_off_loads_the_model_without_it(
    tmp_path: Path,
) -> None:
    model = build_tiny_pipeline(tmp_path, flagging_safety_checker=True)
    renderer = renderer_for(model, safety_checker=False)

    [png] = renderer.render(request([3]))

    assert renderer.pipeline.safety_checker is None
    assert decoded(png).getextrema() != ((0, 0), (0, 0), (0, 0))


async def test_diffusers_worker_turns_a_queued_job_into_stored_pngs(
    tiny_model: Path, worker_settings: WorkerSettingsFactory, redis_engine: EmbeddedRedis
) -> None:
    """The whole production path: settings -> build_worker -> claim, render, store, complete."""
    settings = worker_settings(
        renderer="diffusers", model=str(tiny_model), device="cpu", steps=2, batch_size=2
    )
    client = Redis.from_url(redis_engine.url, decode_responses=True)
    queue = Queue(client, settings)
    await queue.add_job(TOKEN, "a lighthouse", 3, 64, 64)
    worker = build_worker(settings)
    task = asyncio.create_task(worker.run())
    try:
        deadline = time.monotonic() + 120  # bounds a broken test only
        while (await queue.status(TOKEN)).state is not JobState.COMPLETE:
            assert time.monotonic() < deadline, "job not complete"
            await asyncio.sleep(0.05)
    finally:
        worker.stop()
        await asyncio.wait_for(task, 60)
        await worker.source.aclose()
        await client.aclose()

    for index in range(3):
        image = decoded((settings.images_dir / TOKEN / f"{index:05d}.png").read_bytes())
        assert image.size == (64, 64)
        assert image.text["sdq:seed"] == str(seed_for(TOKEN, index))
