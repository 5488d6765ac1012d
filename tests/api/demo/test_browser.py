"""The demo page end to end in a real headless Chromium (Debian's `chromium`, driven by
Playwright): the API and a test-pattern worker run as real processes on a real Redis;
a person types a prompt, submits, watches the progress bar move and the preview of
the image being drawn, and sees the images appear.

Skipped only when /usr/bin/chromium or Playwright is missing (scripts/test installs
both). Playwright's own browser download is never used.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from sdq.embedded_redis import EmbeddedRedis
from sdq.supervisor import free_port

CHROMIUM = Path("/usr/bin/chromium")
PREFIX = f"browser-{uuid.uuid4().hex[:8]}"  # the service's queue (sdq admin acts on it)
REPO = Path(__file__).resolve().parents[3]  # the repository root: its code runs
SCREENSHOT_COPY = Path("/tmp/demo-screenshot.png")
ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
]
IMAGES_LOADED = """n => {
  const images = [...document.querySelectorAll('#gallery img')];
  return images.length === n && images.every(i => i.complete && i.naturalWidth > 0);
}"""

pytestmark = [
    pytest.mark.slow,
    pytest.mark.skipif(not CHROMIUM.exists(), reason="needs Debian's chromium (/usr/bin/chromium)"),
]
sync_api = pytest.importorskip("playwright.sync_api", reason="needs playwright (the test extra)")


def _env(**values: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("SDQ_")}
    env.update({f"SDQ_{k.upper()}": v for k, v in values.items()})
    return env


def _stop(process: subprocess.Popen[bytes]) -> None:
    if process.poll() is None:
        process.terminate()
        try:
            process.wait(timeout=15)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


@pytest.fixture(scope="module")
def service(redis_engine: EmbeddedRedis, tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """The API (uvicorn) and one test-pattern worker; the API's base URL."""
    images = tmp_path_factory.mktemp("images")
    common = {
        "redis_url": redis_engine.url,
        "key_prefix": PREFIX,
        "backend_secrets": "browser-test-backend-secret-0123",
        "images_dir": str(images),
    }
    port = free_port()
    api = subprocess.Popen(
        [sys.executable, "-m", "sdq.cli", "api", "--port", str(port), "--host", "127.0.0.1"],
        env=_env(**common, insecure_skip_captcha="true", access_log="false", sse_poll_s="0.25"),
        cwd=REPO,
    )
    worker = subprocess.Popen(
        [sys.executable, "-m", "sdq.cli", "worker"],
        env=_env(
            **common,
            transport="redis",
            renderer="test-pattern",
            storage="local",
            test_pattern_ms_per_image="500",
            batch_size="2",  # a batch of 2 takes 1 s in 25 simulated steps
            report_interval_s="0.5",
            idle_poll_s="0.5",
        ),
        cwd=REPO,
    )
    url = f"http://127.0.0.1:{port}"
    try:
        _wait_ready(url, api)
        yield url
    finally:
        _stop(worker)
        _stop(api)


def _wait_ready(url: str, api: subprocess.Popen[bytes]) -> None:
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        assert api.poll() is None, f"the API exited with {api.returncode}"
        try:
            if httpx.get(f"{url}/readyz", timeout=1).status_code == 200:
                return
        except httpx.HTTPError:
            pass
        time.sleep(0.1)
    raise AssertionError("the API did not become ready")


@pytest.fixture(scope="module")
def browser() -> Iterator[Any]:
    with sync_api.sync_playwright() as playwright:
        chromium = playwright.chromium.launch(executable_path=str(CHROMIUM), args=ARGS)
        yield chromium
        chromium.close()


@pytest.fixture
def offline_page(browser: Any, service: str) -> Iterator[tuple[Any, list[str]]]:
    """A page that may reach only the service; every other request is refused and listed."""
    context = browser.new_context(viewport={"width": 1100, "height": 900})
    outside: list[str] = []

    def guard(route: Any) -> None:
        if route.request.url.startswith(service):
            route.continue_()
        else:
            outside.append(route.request.url)
            route.abort()

    context.route("**/*", guard)
    page = context.new_page()
    yield page, outside
    context.close()


def _active_id(page: Any) -> str:
    return str(page.evaluate("document.activeElement && document.activeElement.id"))


def test_demo_page_with_the_keyboard_alone_submits_and_shows_the_images(
    offline_page: tuple[Any, list[str]], service: str, tmp_path: Path
) -> None:
    page, outside = offline_page
    page.goto(service + "/")
    page.wait_for_selector("#examples button")  # the form is built from /v2/config
    assert "Captcha verification is off" in page.inner_text("#captcha-note")

    page.keyboard.press("Tab")
    assert _active_id(page) == "" and page.evaluate("document.activeElement.className") == "skip"
    page.keyboard.press("Enter")  # the skip link moves focus to the prompt
    assert _active_id(page) == "prompt"
    page.keyboard.type("A yellow mountain bike, children's book illustration.")
    for _ in range(10):
        page.keyboard.press("Tab")
        if _active_id(page) == "resolution":
            break
    assert _active_id(page) == "resolution"
    page.keyboard.press("Tab")
    assert _active_id(page) == "number"
    assert page.evaluate("getComputedStyle(document.activeElement).outlineStyle") == "solid"
    page.keyboard.press("Control+A")
    page.keyboard.type("3")
    page.keyboard.press("Enter")  # submits the form

    page.wait_for_function(IMAGES_LOADED, arg=3, timeout=60_000)
    assert page.inner_text("#status") == "Done: 3 images ready."
    assert page.inner_text("#fact-state") == "complete"
    assert page.get_attribute("#status", "aria-live") == "polite"
    alts = page.eval_on_selector_all("#gallery img", "els => els.map(e => e.alt)")
    assert alts[0] == "Image 1 of 3: A yellow mountain bike, children's book illustration."
    sizes = page.eval_on_selector_all("#gallery img", "els => els.map(e => e.naturalWidth)")
    assert sizes == [768, 768, 768]  # the default format, 768x576
    assert outside == []

    shot = tmp_path / "demo-screenshot.png"
    page.screenshot(path=str(shot), full_page=True)
    shutil.copyfile(shot, SCREENSHOT_COPY)


def test_demo_page_on_a_phone_screen_fits_and_uses_an_example_prompt(
    browser: Any, service: str, tmp_path: Path
) -> None:
    context = browser.new_context(
        viewport={"width": 390, "height": 844}, device_scale_factor=2, is_mobile=True,
        has_touch=True,
    )  # fmt: skip
    page = context.new_page()
    try:
        page.goto(service + "/")
        page.get_by_role("button", name="Use example: Portrait of Reinhold Messner").click()
        assert page.input_value("#resolution") == "576x768"
        page.fill("#number", "2")
        page.get_by_role("button", name="Generate").click()
        page.wait_for_function(IMAGES_LOADED, arg=2, timeout=60_000)
        overflow = page.evaluate("document.documentElement.scrollWidth - window.innerWidth")
        assert overflow <= 0
        heights = page.eval_on_selector_all("#gallery img", "els => els.map(e => e.naturalHeight)")
        assert heights == [768, 768]
        page.screenshot(path=str(tmp_path / "demo-phone.png"), full_page=True)
        shutil.copyfile(tmp_path / "demo-phone.png", SCREENSHOT_COPY.with_name("demo-phone.png"))
    finally:
        context.close()


def _admin(redis_engine: EmbeddedRedis, action: str) -> None:
    env = _env(redis_url=redis_engine.url, key_prefix=PREFIX)
    done = subprocess.run(
        [sys.executable, "-m", "sdq", "admin", action], env=env, cwd=REPO, timeout=60,
        capture_output=True, check=False,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr


def test_demo_page_says_the_queue_is_paused_and_goes_on_once_resumed(
    offline_page: tuple[Any, list[str]], service: str, redis_engine: EmbeddedRedis
) -> None:
    page, _ = offline_page
    _admin(redis_engine, "pause")
    try:
        page.goto(service + "/")
        page.fill("#prompt", "The Dolomites, high detail, watercolor.")
        page.fill("#number", "1")
        page.click("#submit")
        page.wait_for_function(
            "() => document.querySelector('#status').innerText.includes('paused')",
            timeout=30_000,
        )
        assert "paused by its operator" in page.inner_text("#notice")
    finally:
        _admin(redis_engine, "resume")
    page.wait_for_function(IMAGES_LOADED, arg=1, timeout=60_000)
    assert page.inner_text("#status") == "Done: 1 image ready."


SAMPLER = """() => {
  window.samples = [];
  setInterval(() => {
    const image = document.getElementById('preview');
    const shown = !document.getElementById('preview-box').hidden && image.complete;
    window.samples.push({
      state: document.getElementById('fact-state').textContent,
      value: document.getElementById('progress').value,
      preview: shown ? image.naturalWidth : 0,
    });
  }, 50);
}"""


def test_demo_page_shows_a_moving_progress_bar_and_a_preview_while_rendering(
    offline_page: tuple[Any, list[str]], service: str
) -> None:
    page, outside = offline_page
    page.goto(service + "/")
    page.wait_for_selector("#examples button")
    page.evaluate(SAMPLER)
    page.fill("#prompt", "The Dolomites, high detail, watercolor.")
    page.select_option("#resolution", "576x576")
    page.fill("#number", "8")  # 4 batches of 2, a second each
    page.click("#submit")

    page.wait_for_function(IMAGES_LOADED, arg=8, timeout=60_000)

    samples = page.evaluate("window.samples")
    rendering = [s for s in samples if s["state"] == "pending"]
    values = sorted({s["value"] for s in rendering})
    assert len(values) >= 3, values  # the bar moved while the job rendered
    assert any(0 < v < 1 and abs(v * 8 - round(v * 8)) > 0.01 for v in values), values  # mid-batch
    previews = [s["preview"] for s in rendering if s["preview"]]
    assert previews and max(previews) <= 256  # a small preview was shown
    assert page.is_hidden("#preview-box")  # and is gone once the job is complete
    assert page.evaluate("document.getElementById('progress').value") == 1
    assert outside == []


def test_demo_page_falls_back_to_polling_without_event_streams(
    offline_page: tuple[Any, list[str]], service: str
) -> None:
    page, _ = offline_page
    page.add_init_script("delete window.EventSource")
    page.goto(service + "/")
    page.fill("#prompt", "An apple on a wooden table, magazine photo.")
    page.select_option("#resolution", "576x576")
    page.fill("#number", "1")
    page.click("#submit")
    page.wait_for_function(IMAGES_LOADED, arg=1, timeout=60_000)
    assert page.inner_text("#status") == "Done: 1 image ready."


def test_demo_page_shows_each_field_error_next_to_its_field(
    offline_page: tuple[Any, list[str]], service: str
) -> None:
    page, _ = offline_page
    page.goto(service + "/")
    page.wait_for_selector("#examples button")
    page.fill("#number", "17")
    page.click("#submit")
    page.wait_for_selector("#prompt-error:not([hidden])")
    assert page.inner_text("#prompt-error") == "missing prompt"
    assert page.inner_text("#number-error") == "number out of range"
    assert page.get_attribute("#prompt", "aria-invalid") == "true"
    assert _active_id(page) == "prompt"  # focus goes to the first field to fix
    assert page.get_attribute("#form-errors", "role") == "alert"
