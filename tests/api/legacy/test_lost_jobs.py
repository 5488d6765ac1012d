"""A job record that is gone while an index still lists it (eviction, a partial
restore, a DEL by hand) costs the legacy paths nothing: /getNextJob names the next
job (never a 500), and a partial hash left by an older version reads as not found."""

from __future__ import annotations

import httpx

from broker.queue import Queue
from tests.conftest import BACKEND_SECRET

ADD = {"prompt": "a cat", "number": "1", "resolution": "768x576", "captcha": "good-1"}


async def test_lost_head_is_skipped_by_get_next_job(
    client: httpx.AsyncClient, queue: Queue
) -> None:
    lost = (await client.get("/addJob", params=ADD)).json()
    kept = (await client.get("/addJob", params=ADD)).json()
    await queue.redis.delete(queue.keys.job(lost))

    reply = await client.get("/getNextJob", params={"secret": BACKEND_SECRET})

    assert reply.status_code == 200
    assert reply.json()["Token"] == kept
    gone = await client.get("/getJobStatus", params={"token": lost})
    assert (gone.status_code, gone.content) == (404, b'"token not found"\n')
    status = (await client.get("/getJobStatus", params={"token": kept})).json()
    assert status["QueueLength"] == 0  # the lost job no longer counts


async def test_lost_partial_hash_answers_404_not_500(
    client: httpx.AsyncClient, queue: Queue
) -> None:
    token = (await client.get("/addJob", params=ADD)).json()
    key = queue.keys.job(token)
    await queue.redis.delete(key)
    await queue.redis.hset(key, mapping={"state": "pending", "fence": "1"})

    reply = await client.get("/getJobStatus", params={"token": token})
    view = await client.get(f"/v2/jobs/{token}")

    assert (reply.status_code, reply.content) == (404, b'"token not found"\n')
    assert view.status_code == 404
