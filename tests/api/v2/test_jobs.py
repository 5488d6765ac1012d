"""POST, GET and DELETE /v2/jobs: the /addJob rules as JSON, a job's whole story, cancel."""

from __future__ import annotations

from pathlib import Path

import httpx
import pytest
from redis.asyncio import Redis

from api.settings import ApiSettings
from broker.errors import InvalidTransition
from broker.queue import Queue
from broker.states import JobState
from sdq.doubles.fake_hcaptcha import FakeHCaptcha
from sdq.supervisor import free_port
from tests.api.v2.conftest import MakeApp, http, report, submit
from tests.conftest import HCAPTCHA_SECRET

TOKEN_SHAPED_UNKNOWN = "0123456789abcdef0123456789abcdef"


async def test_v2_create_job_answers_201_with_the_token_and_where_to_follow(
    client: httpx.AsyncClient, queue: Queue
) -> None:
    reply = await client.post(
        "/v2/jobs",
        json={"prompt": "hello world", "number": 3, "resolution": "768x576", "captcha": "good-1"},
    )
    assert reply.status_code == 201
    body = reply.json()
    token = body["token"]
    assert len(token) == 32 and set(token) <= set("0123456789abcdef")
    assert body["state"] == "new"
    assert body["links"] == {"status": f"/v2/jobs/{token}", "events": f"/v2/jobs/{token}/events"}
    assert reply.headers["location"] == f"/v2/jobs/{token}"
    status = await queue.status(token)
    assert (status.state, status.number, status.width, status.height) == (
        JobState.NEW, 3, 768, 576,
    )  # fmt: skip


async def test_v2_create_job_lists_every_failed_rule_with_its_field(
    client: httpx.AsyncClient,
) -> None:
    reply = await client.post(
        "/v2/jobs", json={"prompt": "", "number": 1000, "resolution": "768x13"}
    )
    assert reply.status_code == 422
    assert reply.json() == {
        "errors": [
            {"field": "prompt", "message": "missing prompt"},
            {"field": "number", "message": "number out of range"},
            {"field": "resolution", "message": "invalid resolution"},
            {"field": "captcha", "message": "missing captcha"},
        ]
    }


async def test_v2_create_job_uses_the_legacy_messages_for_every_rule(
    client: httpx.AsyncClient,
) -> None:
    reply = await client.post(
        "/v2/jobs",
        json={"prompt": "x" * 501, "number": "0x10", "resolution": "", "captcha": "c" * 5001},
    )
    assert [error["message"] for error in reply.json()["errors"]] == [
        "prompt too long",
        "cannot parse number",
        "missing resolution",
        "captcha too long",
    ]


async def test_v2_create_job_trims_and_transliterates_like_add_job(
    client: httpx.AsyncClient, queue: Queue
) -> None:
    token = await submit(client, prompt="  Grüße aus Südtirol, caffè  ", number=" 2 ")
    record = await queue.redis.hgetall(queue.keys.job(token))
    assert (record["prompt"], record["number"]) == ("Gruesse aus Suedtirol, caffe", "2")


async def test_v2_create_job_refuses_a_prompt_outside_printable_ascii(
    client: httpx.AsyncClient,
) -> None:
    reply = await client.post(
        "/v2/jobs",
        json={"prompt": "snow ☃", "number": 1, "resolution": "576x576", "captcha": "good-1"},
    )
    assert reply.status_code == 422
    assert reply.json()["errors"][0]["field"] == "prompt"
    assert reply.json()["errors"][0]["message"].startswith("prompt contains a non-printable")


@pytest.mark.parametrize("body", [b"not json", b"[1, 2]", b'"a string"', b""])
async def test_v2_create_job_body_must_be_a_json_object(
    client: httpx.AsyncClient, body: bytes
) -> None:
    reply = await client.post(
        "/v2/jobs", content=body, headers={"content-type": "application/json"}
    )
    assert reply.status_code == 400
    assert reply.json() == {
        "errors": [{"field": "body", "message": "the body must be a JSON object"}]
    }


async def test_v2_create_job_names_each_field_of_the_wrong_json_type(
    client: httpx.AsyncClient,
) -> None:
    reply = await client.post(
        "/v2/jobs", json={"prompt": 5, "number": 2.5, "resolution": "576x576", "captcha": "x"}
    )
    assert reply.status_code == 422
    assert reply.json() == {
        "errors": [
            {"field": "prompt", "message": "prompt must be a string"},
            {"field": "number", "message": "number must be an integer or a string"},
        ]
    }


async def test_v2_create_job_verifies_the_captcha_with_hcaptcha(
    client: httpx.AsyncClient, fake_hcaptcha: FakeHCaptcha
) -> None:
    reply = await client.post(
        "/v2/jobs",
        json={"prompt": "hi", "number": 1, "resolution": "576x576", "captcha": "bad-v2-xyz"},
    )
    assert reply.status_code == 400
    assert reply.json() == {"errors": [{"field": "captcha", "message": "captcha failed"}]}
    call = next(c for c in fake_hcaptcha.calls if c.get("response") == "bad-v2-xyz")
    assert call["secret"] == HCAPTCHA_SECRET
    assert call["remoteip"] == "203.0.113.7"


async def test_v2_create_job_never_spends_a_captcha_on_an_invalid_request(
    client: httpx.AsyncClient, fake_hcaptcha: FakeHCaptcha
) -> None:
    reply = await client.post(
        "/v2/jobs",
        json={"prompt": "hi", "number": 17, "resolution": "576x576", "captcha": "good-unspent"},
    )
    assert reply.status_code == 422
    assert not any(c.get("response") == "good-unspent" for c in fake_hcaptcha.calls)


async def test_v2_get_job_shows_state_age_position_attempts_and_progress(
    client: httpx.AsyncClient,
) -> None:
    first = await submit(client)
    second = await submit(client, number=3, resolution="1024x576", prompt="The Dolomites")
    view = (await client.get(f"/v2/jobs/{second}")).json()
    assert view["token"] == second
    assert view["state"] == "new"
    assert (view["prompt"], view["resolution"]) == ("The Dolomites", "1024x576")
    assert view["position"] == 1
    assert view["attempts"] == 0
    assert view["progress"] == {"done": 0, "total": 3, "fraction": 0.0}
    assert view["age_s"] >= 0
    assert view["images"] is None
    assert view["links"]["events"] == f"/v2/jobs/{second}/events"
    assert (await client.get(f"/v2/jobs/{first}")).json()["position"] == 0


@pytest.mark.parametrize(
    "token", [TOKEN_SHAPED_UNKNOWN, "short", "0123456789ABCDEF0123456789ABCDEF"]
)
async def test_v2_get_job_unknown_token_is_404(client: httpx.AsyncClient, token: str) -> None:
    reply = await client.get(f"/v2/jobs/{token}")
    assert reply.status_code == 404
    assert reply.json() == {"errors": [{"field": "token", "message": "token not found"}]}


async def test_v2_get_job_says_so_when_no_worker_is_live(client: httpx.AsyncClient) -> None:
    view = (await client.get(f"/v2/jobs/{await submit(client)}")).json()
    assert view["workers"] == {"live": 0, "available": False}
    assert view["eta_s"] is None
    assert "No worker is running" in view["notice"]


async def test_v2_get_job_eta_adds_the_work_ahead_and_its_own_images(
    client: httpx.AsyncClient, queue: Queue
) -> None:
    await report(queue, "gpu-1", (576, 576, 4, 4000), (1024, 576, 2, 6000))
    await submit(client, number=2, resolution="1024x576")  # 2 x 3 s ahead
    await submit(client, number=2, resolution="1024x576")  # 2 x 3 s ahead
    token = await submit(client, number=3, resolution="576x576")  # 3 x 1 s own
    view = (await client.get(f"/v2/jobs/{token}")).json()
    assert view["workers"] == {"live": 1, "available": True}
    assert view["eta_s"] == 12.0 + 3.0  # the jobs ahead are like the new jobs' mean: exact
    assert view["notice"] is None


async def test_v2_get_job_eta_shares_the_work_ahead_between_live_workers(
    client: httpx.AsyncClient, queue: Queue
) -> None:
    await report(queue, "gpu-1", (576, 576, 1, 1000))
    await report(queue, "gpu-2")
    for _ in range(4):
        await submit(client, number=1)
    token = await submit(client, number=1)
    view = (await client.get(f"/v2/jobs/{token}")).json()
    assert view["workers"]["live"] == 2
    assert view["eta_s"] == 4 / 2 + 1


async def test_v2_get_job_pending_shows_images_done_and_the_rest_as_eta(
    client: httpx.AsyncClient, queue: Queue
) -> None:
    await report(queue, "gpu-1", (576, 576, 1, 2000))
    token = await submit(client, number=4)
    claim = await queue.claim("gpu-1")
    assert claim is not None and claim.job.token == token
    await queue.renew_lease(token, claim.fence, progress=1)
    view = (await client.get(f"/v2/jobs/{token}")).json()
    assert view["state"] == "pending"
    assert view["position"] == 0
    assert view["progress"] == {"done": 1, "total": 4, "fraction": 0.25}
    assert view["eta_s"] == 6.0


async def test_v2_get_job_counts_a_busy_worker_as_live_before_it_reports(
    client: httpx.AsyncClient, queue: Queue
) -> None:
    await submit(client)
    behind = await submit(client)
    assert await queue.claim("quiet-worker") is not None
    view = (await client.get(f"/v2/jobs/{behind}")).json()
    assert view["workers"] == {"live": 1, "available": True}
    assert "No render time has been measured yet" in view["notice"]


async def test_v2_get_job_complete_lists_its_images_from_the_public_base_url(
    make_app: MakeApp, queue: Queue
) -> None:
    app = await make_app(image_base_url="https://cdn.example.org/sd/")
    async with http(app) as client:
        token = await submit(client, number=2)
        claim = await queue.claim("gpu-1")
        assert claim is not None
        await queue.complete(token, claim.fence)
        view = (await client.get(f"/v2/jobs/{token}")).json()
    assert view["state"] == "complete"
    assert view["progress"]["total"] == 2
    assert view["eta_s"] is None
    assert view["images"] == [
        f"https://cdn.example.org/sd/{token}/00000.png",
        f"https://cdn.example.org/sd/{token}/00001.png",
    ]


async def test_v2_get_job_complete_lists_the_apis_own_image_route(
    make_app: MakeApp, queue: Queue, tmp_path: Path
) -> None:
    app = await make_app(images_dir=tmp_path)
    async with http(app) as client:
        token = await submit(client, number=1)
        claim = await queue.claim("gpu-1")
        assert claim is not None
        (tmp_path / token).mkdir()
        (tmp_path / token / "00000.png").write_bytes(b"\x89PNG\r\n\x1a\nfake")
        await queue.complete(token, claim.fence)
        images = (await client.get(f"/v2/jobs/{token}")).json()["images"]
        assert images == [f"/images/{token}/00000.png"]
        image = await client.get(images[0])
    assert image.status_code == 200
    assert image.content.startswith(b"\x89PNG")


async def test_v2_get_job_complete_without_an_image_location_says_so(
    client: httpx.AsyncClient, queue: Queue
) -> None:
    token = await submit(client, number=1)
    claim = await queue.claim("gpu-1")
    assert claim is not None
    await queue.complete(token, claim.fence)
    view = (await client.get(f"/v2/jobs/{token}")).json()
    assert view["images"] is None
    assert "not configured to name their URLs" in view["notice"]


async def test_v2_cancel_a_new_job_takes_it_out_of_the_queue_at_once(
    client: httpx.AsyncClient, queue: Queue, settings: ApiSettings
) -> None:
    doomed = await submit(client)
    behind = await submit(client)
    reply = await client.delete(f"/v2/jobs/{doomed}")
    assert reply.status_code == 200
    assert reply.json()["state"] == "cancelled"
    assert reply.json()["position"] is None
    assert (await client.get(f"/v2/jobs/{behind}")).json()["position"] == 0
    claim = await queue.claim("gpu-1")
    assert claim is not None and claim.job.token == behind
    assert (await queue.status(doomed)).state is JobState.CANCELLED
    ttl_ms = await queue.redis.pttl(queue.keys.job(doomed))
    assert 0 < ttl_ms <= settings.retention_ms


async def test_v2_cancel_a_pending_job_flags_it_for_its_worker_and_fences_it_out(
    client: httpx.AsyncClient, queue: Queue
) -> None:
    token = await submit(client, number=4)
    claim = await queue.claim("gpu-1")
    assert claim is not None
    reply = await client.delete(f"/v2/jobs/{token}")
    assert reply.status_code == 200
    assert (reply.json()["state"], reply.json()["cancel_requested"]) == ("cancelled", True)
    assert await queue.redis.hget(queue.keys.job(token), "cancel_requested")
    with pytest.raises(InvalidTransition):
        await queue.renew_lease(token, claim.fence, progress=1)
    with pytest.raises(InvalidTransition):
        await queue.complete(token, claim.fence)
    assert (await queue.counts())["pending"] == 0


async def test_v2_cancel_twice_is_harmless(client: httpx.AsyncClient) -> None:
    token = await submit(client)
    assert (await client.delete(f"/v2/jobs/{token}")).status_code == 200
    again = await client.delete(f"/v2/jobs/{token}")
    assert (again.status_code, again.json()["state"]) == (200, "cancelled")


async def test_v2_cancel_a_finished_job_is_409(client: httpx.AsyncClient, queue: Queue) -> None:
    token = await submit(client)
    claim = await queue.claim("gpu-1")
    assert claim is not None
    await queue.complete(token, claim.fence)
    reply = await client.delete(f"/v2/jobs/{token}")
    assert reply.status_code == 409
    assert reply.json() == {
        "errors": [{"field": "token", "message": "the job is finished: nothing to cancel"}]
    }
    assert (await queue.status(token)).state is JobState.COMPLETE


async def test_v2_cancel_an_unknown_token_is_404(client: httpx.AsyncClient) -> None:
    reply = await client.delete(f"/v2/jobs/{TOKEN_SHAPED_UNKNOWN}")
    assert reply.status_code == 404


async def test_v2_routes_answer_503_when_redis_is_unreachable(settings: ApiSettings) -> None:
    from api.app import create_app

    dead = Redis.from_url(f"redis://127.0.0.1:{free_port()}/0", decode_responses=True)
    app = create_app(settings, redis=dead)
    async with app.router.lifespan_context(app), http(app) as client:
        reply = await client.get(f"/v2/jobs/{TOKEN_SHAPED_UNKNOWN}")
        created = await client.post(
            "/v2/jobs",
            json={"prompt": "hi", "number": 1, "resolution": "576x576", "captcha": "good-1"},
        )
    await dead.aclose()
    assert reply.status_code == created.status_code == 503
    assert reply.json() == {"errors": [{"field": None, "message": "storage unavailable"}]}


async def test_v2_create_job_applies_the_open_jobs_cap_of_add_job(make_app: MakeApp) -> None:
    app = await make_app(max_open_jobs_per_client=1)
    async with http(app) as client:
        first = await submit(client)
        refused = await client.post(
            "/v2/jobs",
            json={"prompt": "hi", "number": 1, "resolution": "576x576", "captcha": "good-1"},
        )
        assert refused.status_code == 429
        assert refused.json() == {"errors": [{"field": None, "message": "too many open jobs"}]}
        await client.delete(f"/v2/jobs/{first}")  # a finished job no longer counts
        await submit(client)


async def test_v2_create_job_applies_the_rate_limit_of_add_job(make_app: MakeApp) -> None:
    app = await make_app(addjob_rate="1/minute")
    async with http(app) as client:
        await submit(client)
        refused = await client.post(
            "/v2/jobs",
            json={"prompt": "hi", "number": 1, "resolution": "576x576", "captcha": "good-1"},
        )
    assert refused.status_code == 429
    assert refused.json() == {"errors": [{"field": None, "message": "too many requests"}]}
    assert int(refused.headers["retry-after"]) > 0
