"""Step progress and live previews through the API: what a worker sends with its lease
(/backend/lease's body, or Queue.renew_lease) shows in the JobView, at
/v2/jobs/{token}/preview and in the event stream; per-worker figures in /metrics."""

from __future__ import annotations

import base64
import io
from collections.abc import AsyncIterator

import httpx
from fastapi import FastAPI
from PIL import Image

from broker.images import PREVIEW_MAX_BYTES
from broker.queue import Queue
from broker.renders import RenderSample, WorkerFigures
from tests.api.v2.conftest import Event, EventStream, MakeApp, http, submit
from tests.conftest import BACKEND_SECRET

BEARER = {"Authorization": f"Bearer {BACKEND_SECRET}"}
FAST = {"sse_poll_s": 0.01, "sse_keepalive_s": 60.0}


def jpeg(colour: tuple[int, int, int] = (200, 40, 40)) -> bytes:
    out = io.BytesIO()
    Image.new("RGB", (96, 72), colour).save(out, format="JPEG")
    return out.getvalue()


async def claimed(client: httpx.AsyncClient, queue: Queue, number: int = 4) -> tuple[str, int]:
    token = await submit(client, number=number)
    claim = await queue.claim("gpu-1", lease_ms=60_000)
    assert claim is not None and claim.job.token == token and claim.fence is not None
    return token, claim.fence


async def test_v2_job_shows_the_step_fraction_and_a_preview_while_rendering(
    make_app: MakeApp, queue: Queue
) -> None:
    async with http(await make_app()) as client:
        token, fence = await claimed(client, queue)
        await queue.renew_lease(token, fence, progress=1, fraction=0.4375, preview=jpeg())

        view = (await client.get(f"/v2/jobs/{token}")).json()
        assert view["progress"] == {"done": 1, "total": 4, "fraction": 0.438}
        assert view["preview"].startswith(f"/v2/jobs/{token}/preview?v=")
        reply = await client.get(view["preview"])
        assert reply.status_code == 200
        assert reply.headers["content-type"] == "image/jpeg"
        assert reply.headers["cache-control"] == "no-store"
        assert reply.content == jpeg()

        await queue.complete(token, fence)
        view = (await client.get(f"/v2/jobs/{token}")).json()
        assert (view["preview"], view["progress"]["fraction"]) == (None, 1.0)
        gone = await client.get(f"/v2/jobs/{token}/preview")
        assert gone.status_code == 404
        assert gone.json() == {"errors": [{"field": "token", "message": "no preview"}]}


async def test_v2_preview_of_a_job_without_one_or_of_no_job_is_404(
    make_app: MakeApp, queue: Queue
) -> None:
    async with http(await make_app()) as client:
        token = await submit(client)
        assert (await client.get(f"/v2/jobs/{token}/preview")).status_code == 404
        assert (await client.get(f"/v2/jobs/{'e' * 32}/preview")).status_code == 404
        assert (await client.get("/v2/jobs/not-a-token/preview")).status_code == 404


async def next_status(events: AsyncIterator[Event]) -> Event:
    async for event in events:
        if event.kind == "status":
            return event
    raise AssertionError("the stream ended")


async def test_v2_events_send_a_status_when_the_fraction_or_the_preview_changes(
    make_app: MakeApp, queue: Queue
) -> None:
    app: FastAPI = await make_app(**FAST)
    async with http(app) as client:
        token, fence = await claimed(client, queue, number=2)
    events = EventStream(app, f"/v2/jobs/{token}/events").events()
    assert (await next_status(events)).data["progress"]["fraction"] == 0.0

    await queue.renew_lease(token, fence, progress=0, fraction=0.25)
    moved = await next_status(events)
    assert (moved.data["progress"]["done"], moved.data["progress"]["fraction"]) == (0, 0.25)
    assert moved.data["preview"] is None

    await queue.renew_lease(token, fence, preview=jpeg())
    pictured = await next_status(events)
    assert pictured.data["preview"] is not None and pictured.id != moved.id
    await queue.renew_lease(token, fence, preview=jpeg((10, 200, 10)))
    again = await next_status(events)
    assert again.data["preview"] != pictured.data["preview"]  # a new one, a new URL
    await events.aclose()


async def test_backend_lease_takes_the_fraction_and_a_preview_in_its_body(
    client: httpx.AsyncClient, queue: Queue
) -> None:
    token, fence = await claimed(client, queue)
    params = {"token": token, "fence": fence, "progress": 2}
    body = {"fraction": 0.6, "preview": base64.b64encode(jpeg()).decode()}

    reply = await client.post("/backend/lease", params=params, json=body, headers=BEARER)

    assert reply.status_code == 200, reply.text
    assert await queue.preview(token) == jpeg()
    view = (await client.get(f"/v2/jobs/{token}")).json()
    assert view["progress"] == {"done": 2, "total": 4, "fraction": 0.6}


async def test_backend_lease_refuses_a_bad_fraction_or_preview(
    client: httpx.AsyncClient, queue: Queue
) -> None:
    token, fence = await claimed(client, queue)
    params = {"token": token, "fence": fence}
    too_big = base64.b64encode(b"\xff\xd8\xff" + b"x" * PREVIEW_MAX_BYTES).decode()
    for body in (
        {"fraction": 1.5},
        {"fraction": True},
        {"fraction": "0.5"},
        {"preview": "not base64!"},
        {"preview": base64.b64encode(b"GIF89a not a jpeg").decode()},
        {"preview": too_big},
        [1, 2],
    ):
        reply = await client.post("/backend/lease", params=params, json=body, headers=BEARER)
        assert reply.status_code == 400, body
        assert "error" in reply.json()
    assert await queue.preview(token) is None


async def test_backend_lease_of_a_cancelled_job_says_job_cancelled(
    client: httpx.AsyncClient, queue: Queue
) -> None:
    token, fence = await claimed(client, queue)
    assert (await client.delete(f"/v2/jobs/{token}")).status_code == 200

    reply = await client.post(
        "/backend/lease", params={"token": token, "fence": fence}, headers=BEARER
    )

    assert (reply.status_code, reply.json()) == (409, {"error": "job cancelled"})


async def test_backend_release_of_a_job_never_started_is_not_counted(
    client: httpx.AsyncClient, queue: Queue
) -> None:
    token, fence = await claimed(client, queue)
    params = {"token": token, "fence": fence, "reason": "worker stopping", "counted": 0}

    reply = await client.post("/backend/release", params=params, headers=BEARER)

    assert (reply.status_code, reply.json()["state"]) == (200, "new")
    assert (await queue.status(token)).attempts == 0


async def test_metrics_export_each_workers_busy_ratio_rate_and_seconds_per_image(
    client: httpx.AsyncClient, queue: Queue
) -> None:
    figures = WorkerFigures(0.984, 1.9, {"768x576": 0.52})
    body = {
        "worker": "gpu-7",
        "renders": [{"width": 768, "height": 576, "images": 4, "ms": 2080}],
        "figures": figures.encode(),
    }
    reply = await client.post("/backend/report", json=body, headers=BEARER)
    assert reply.status_code == 200, reply.text
    await queue.record_renders("gpu-8", [RenderSample(576, 576, 2, 800)])

    text = (await client.get("/metrics")).text

    assert 'sdq_worker_gpu_busy_ratio{worker="gpu-7"} 0.984' in text
    assert 'sdq_worker_images_per_second{worker="gpu-7"} 1.9' in text
    assert 'sdq_worker_seconds_per_image{resolution="768x576",worker="gpu-7"} 0.52' in text
    assert 'sdq_render_seconds_per_image{resolution="576x576"} 0.4' in text
    assert 'worker="gpu-8"' not in text  # it sent no figures
    bad = await client.post("/backend/report", json={**body, "figures": "busy=x"}, headers=BEARER)
    assert bad.status_code == 400
