"""The small parts: backoff, seeds, the test-pattern renderer, settings."""

from __future__ import annotations

import io
import time
from typing import Any

import pytest
from PIL import Image

from gpu_worker.backoff import Backoff
from gpu_worker.encode import png
from gpu_worker.renderers.base import RenderRequest
from gpu_worker.renderers.test_pattern import TestPatternRenderer
from gpu_worker.seeds import seed_for
from gpu_worker.settings import WorkerSettings

TOKEN = "0123456789abcdef" * 2


def test_backoff_doubles_up_to_the_cap() -> None:
    backoff = Backoff(base_s=0.1, cap_s=1.0, rng=lambda: 1.0)
    assert [round(backoff.next_delay(), 3) for _ in range(6)] == [0.1, 0.2, 0.4, 0.8, 1.0, 1.0]


def test_backoff_jitter_stays_between_half_and_all_of_the_delay() -> None:
    low = Backoff(base_s=0.4, cap_s=10.0, rng=lambda: 0.0)
    assert [low.next_delay() for _ in range(3)] == [0.2, 0.4, 0.8]


def test_backoff_reset_starts_over_after_a_success() -> None:
    backoff = Backoff(base_s=0.1, cap_s=5.0, rng=lambda: 1.0)
    for _ in range(5):
        backoff.next_delay()
    backoff.reset()
    assert backoff.next_delay() == pytest.approx(0.1)


def test_seed_is_a_pure_function_of_token_and_index() -> None:
    assert seed_for(TOKEN, 3) == seed_for(TOKEN, 3)
    seeds = {seed_for(TOKEN, i) for i in range(16)} | {seed_for("f" * 32, 0)}
    assert len(seeds) == 17
    assert all(0 <= seed < 2**63 for seed in seeds)


@pytest.mark.parametrize("size", [(1024, 576), (768, 576), (576, 768), (576, 576)])
def test_test_pattern_has_the_exact_size_and_says_what_it_is(size: tuple[int, int]) -> None:
    request = RenderRequest(TOKEN, "an apple on a table", size[0], size[1], [0, 1], [11, 22])
    images = TestPatternRenderer().render(request)
    assert len(images) == 2
    for index, (rendered, seed) in enumerate(zip(images, [11, 22], strict=True)):
        image = Image.open(io.BytesIO(png(rendered.image, rendered.text, 4)))
        assert (image.format, image.size) == ("PNG", size)
        text = image.text  # type: ignore[attr-defined]
        assert text["sdq:renderer"] == "test-pattern"
        assert (text["sdq:token"], text["sdq:index"], text["sdq:seed"]) == (
            TOKEN,
            str(index),
            str(seed),
        )
        assert text["sdq:prompt"] == "an apple on a table"


def test_test_pattern_reports_its_simulated_steps_with_a_preview() -> None:
    request = RenderRequest(TOKEN, "an apple", 576, 576, [0, 1], [11, 22])
    seen: list[tuple[int, int, tuple[int, int]]] = []

    def on_step(done: int, total: int, preview: Any = None) -> None:
        seen.append((done, total, preview().size))

    started = time.monotonic()
    TestPatternRenderer(ms_per_image=100, steps=5).render(request, on_step)

    assert [(done, total) for done, total, _ in seen] == [(i, 5) for i in range(1, 6)]
    assert {size for *_, size in seen} == {(256, 256)}  # small: at most 256 px
    assert time.monotonic() - started >= 0.2  # 2 images x 100 ms, slept step by step


def test_worker_settings_read_the_backend_secrets_list_as_the_api_does(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("SDQ_BACKEND_SECRETS", "first-secret, second-secret")
    monkeypatch.setenv("SDQ_TRANSPORT", "http")
    assert WorkerSettings().secret() == "first-secret"


def test_worker_settings_refuse_http_without_a_secret_and_s3_without_a_bucket() -> None:
    with pytest.raises(ValueError, match="backend secret"):
        WorkerSettings(transport="http")
    with pytest.raises(ValueError, match="SDQ_S3_BUCKET"):
        WorkerSettings(storage="s3")


@pytest.mark.parametrize("url", ["ftp://api:9090", "127.0.0.1:9090", "http://", "not a url"])
def test_worker_settings_refuse_an_api_url_that_is_not_http(url: str) -> None:
    with pytest.raises(ValueError, match="SDQ_API_URL"):
        WorkerSettings(api_url=url)
