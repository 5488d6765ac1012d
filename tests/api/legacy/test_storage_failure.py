"""Redis goes away and comes back: every legacy path answers a short 500, then recovers
without an app restart. Uses its own server (the session's engine must stay up) and the
app's own Redis client, built from the URL as in production."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator, Iterator

import httpx
import pytest
from pydantic import SecretStr

from api.app import create_app
from api.settings import ApiSettings
from sdq.embedded_redis import EmbeddedRedis
from tests.conftest import BACKEND_SECRET

ADD = "prompt=hello&number=1&resolution=768x576&captcha=good-1"
TOKEN = "45b825dd9eb2e9602749ac4b74b3d9d9"
REQUESTS = [
    ("/addJob", ADD, True),
    ("/getJobStatus", f"token={TOKEN}", True),
    ("/getNextJob", f"secret={BACKEND_SECRET}", False),
    ("/setJobStatus", f"token={TOKEN}&state=pending&secret={BACKEND_SECRET}", False),
]


@pytest.fixture
def engine() -> Iterator[EmbeddedRedis]:
    server = EmbeddedRedis().start()
    yield server
    server.stop()


@pytest.fixture
async def app_client(
    engine: EmbeddedRedis, settings: ApiSettings
) -> AsyncIterator[httpx.AsyncClient]:
    own = settings.model_copy(update={"redis_url": SecretStr(engine.url), "redis_timeout_s": 0.5})
    app = create_app(own)
    async with app.router.lifespan_context(app):
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://sdq.test") as http:
            yield http


async def assert_all_paths_work(client: httpx.AsyncClient) -> None:
    token = (await client.get(f"/addJob?{ADD}")).json()
    reply = await client.get("/getJobStatus", params={"token": token})
    assert (reply.status_code, reply.json()["State"]) == (200, "new")
    reply = await client.get("/getNextJob", params={"secret": BACKEND_SECRET})
    assert (reply.status_code, reply.json()["Token"]) == (200, token)
    params = {"token": token, "state": "pending", "secret": BACKEND_SECRET}
    assert (await client.get("/setJobStatus", params=params)).content == b'"ok"\n'


async def test_storage_down_every_path_answers_a_short_500(
    app_client: httpx.AsyncClient, engine: EmbeddedRedis
) -> None:
    await assert_all_paths_work(app_client)
    engine.stop()
    for path, query, frontend in REQUESTS:
        reply = await app_client.get(f"{path}?{query}")
        assert reply.status_code == 500, (path, reply.content)
        assert reply.headers["content-type"] == "application/json"
        assert reply.content.endswith(b"\n")
        message = json.loads(reply.content)
        assert isinstance(message, str) and len(message) < 80
        assert "Traceback" not in message and "Error" not in message
        assert ("access-control-allow-origin" in reply.headers) == frontend


async def test_storage_back_on_the_same_port_recovers_without_restart(
    app_client: httpx.AsyncClient, engine: EmbeddedRedis
) -> None:
    await assert_all_paths_work(app_client)
    engine.stop()
    assert (await app_client.get(f"/getJobStatus?token={TOKEN}")).status_code == 500
    assert (await app_client.get(f"/addJob?{ADD}")).status_code == 500
    engine.start()  # same port, empty: the script cache is gone too
    await assert_all_paths_work(app_client)
