"""GET /v2/queue and GET /v2/config, and the v2 routes in the OpenAPI schema."""

from __future__ import annotations

from pathlib import Path

import httpx
import pytest

from broker.queue import Queue
from tests.api.v2.conftest import MakeApp, http, report, submit

SEED = Path("/work/shared/seed/original-service-README.txt")
README = SEED.read_text(encoding="utf-8") if SEED.exists() else None


async def test_v2_queue_counts_jobs_per_state_and_lifetime_totals(
    client: httpx.AsyncClient, queue: Queue
) -> None:
    done, running, _waiting, cancelled = [await submit(client) for _ in range(4)]
    for token in (done, running):
        claim = await queue.claim("gpu-1")
        assert claim is not None and claim.job.token == token
    await queue.complete(done, 1)
    await client.delete(f"/v2/jobs/{cancelled}")
    view = (await client.get("/v2/queue")).json()
    assert view["depth"] == {"new": 1, "pending": 1}
    assert view["totals"]["added"] == 4
    assert view["totals"]["complete"] == 1
    assert view["totals"]["cancelled"] == 1
    assert view["workers"] == {"live": 1, "available": True}  # busy, not reported yet


async def test_v2_queue_render_seconds_per_resolution_from_worker_reports(
    client: httpx.AsyncClient, queue: Queue
) -> None:
    await report(queue, "gpu-1", (576, 576, 4, 8000), (1024, 576, 1, 9000))
    await report(queue, "gpu-2")
    view = (await client.get("/v2/queue")).json()
    assert view["workers"]["live"] == 2
    assert view["render_s"] == {
        "1024x576": {"images": 1, "per_image_s": 9.0, "mean_s": 9.0},
        "576x576": {"images": 4, "per_image_s": 2.0, "mean_s": 2.0},
    }


async def test_v2_queue_jobs_per_minute_counts_completions_since_the_first_sample(
    client: httpx.AsyncClient, queue: Queue
) -> None:
    first = (await client.get("/v2/queue")).json()
    assert (first["jobs_per_minute"], first["rate_window_s"]) == (None, None)
    for _ in range(3):
        token = await submit(client)
        claim = await queue.claim("gpu-1")
        assert claim is not None
        await queue.complete(token, claim.fence)
    view = (await client.get("/v2/queue")).json()
    assert view["rate_window_s"] > 0
    assert view["jobs_per_minute"] == pytest.approx(3 * 60 / view["rate_window_s"], rel=0.01)


async def test_v2_config_offers_the_original_readme_examples_one_per_resolution(
    client: httpx.AsyncClient,
) -> None:
    config = (await client.get("/v2/config")).json()
    values = [option["value"] for option in config["resolutions"]]
    assert values == ["1024x576", "768x576", "576x768", "576x576"]
    assert config["default_resolution"] in values
    assert config["number"] == {"min": 1, "max": 16, "default": 4}
    if README is not None:  # the examples are quoted from the original service's README
        readme = README
        for option in config["resolutions"]:
            assert f"{option['value']} " in readme
            assert f'"{option["example"]}"' in readme


async def test_v2_config_names_the_site_key_when_a_captcha_is_required(
    client: httpx.AsyncClient,
) -> None:
    captcha = (await client.get("/v2/config")).json()["captcha"]
    assert captcha["required"] is True
    assert captcha["sitekey"] == "site-key"
    assert captcha["script"].startswith("https://js.hcaptcha.com/1/api.js")


async def test_v2_config_without_captcha_verification_needs_no_widget(make_app: MakeApp) -> None:
    app = await make_app(hcaptcha_secret=None, insecure_skip_captcha=True)
    async with http(app) as client:
        captcha = (await client.get("/v2/config")).json()["captcha"]
        created = await client.post(
            "/v2/jobs",
            json={"prompt": "hi", "number": 1, "resolution": "576x576", "captcha": "placeholder"},
        )
    assert captcha == {"required": False, "sitekey": "site-key", "script": None}
    assert created.status_code == 201


async def test_v2_every_route_is_in_the_openapi_schema_with_its_response_models(
    client: httpx.AsyncClient,
) -> None:
    schema = (await client.get("/openapi.json")).json()
    paths = schema["paths"]
    expected = {
        ("/v2/jobs", "post"): ("201", "JobCreated"),
        ("/v2/jobs/{token}", "get"): ("200", "JobView"),
        ("/v2/jobs/{token}", "delete"): ("200", "JobView"),
        ("/v2/jobs/{token}/events", "get"): ("200", "JobView"),
        ("/v2/queue", "get"): ("200", "QueueView"),
        ("/v2/config", "get"): ("200", "ConfigView"),
    }
    for (path, method), (status, model) in expected.items():
        responses = paths[path][method]["responses"]
        content = responses[status]["content"]
        assert any(
            media["schema"].get("$ref", "").endswith(f"/{model}") for media in content.values()
        )
    assert (
        "text/event-stream"
        in paths["/v2/jobs/{token}/events"]["get"]["responses"]["200"]["content"]
    )
    errors = paths["/v2/jobs"]["post"]["responses"]
    assert errors["422"]["content"]["application/json"]["schema"]["$ref"].endswith("/ErrorResponse")
    assert paths["/v2/jobs/{token}"]["delete"]["responses"]["409"]
    assert "/" not in paths  # the demo page is not part of the API
