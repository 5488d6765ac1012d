"""bench.sleep_worker's renderer (the simulated GPU of bench.load, bench.mixed and
sdq cluster's workers) speaks the worker's renderer protocol: pixels per index,
which the worker encodes itself."""

from __future__ import annotations

from bench.sleep_worker import SleepRenderer
from gpu_worker.renderers.base import RenderedImage, RenderRequest, no_hook


def test_sleep_renderer_returns_one_blank_image_of_the_size_per_index() -> None:
    request = RenderRequest("0" * 32, "a prompt", 64, 48, [0, 1, 2], [1, 2, 3])

    images = SleepRenderer(ms_per_image=0).render(request, no_hook)

    assert [type(i) for i in images] == [RenderedImage] * 3
    assert {i.image.size for i in images} == {(64, 48)} and images[0].image.mode == "RGB"
    assert images[0].image is not images[1].image  # each its own, for the encode pool
