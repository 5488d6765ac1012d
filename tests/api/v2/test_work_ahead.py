"""The work ahead of a job, as GET /v2/jobs/{token} estimates it: from the queue's
running sums per state and resolution, never from reading the jobs ahead (O(1) at any
depth). Exact when the jobs ahead are like the mean of the other new jobs; otherwise
off by at most the ratio of the largest to the smallest job cost (docs/v2-api.md)."""

from __future__ import annotations

import httpx
import pytest

from broker.queue import Queue
from tests.api.v2.conftest import report, submit


async def test_v2_work_ahead_is_exact_when_every_other_job_is_alike(
    client: httpx.AsyncClient, queue: Queue
) -> None:
    await report(queue, "gpu-1", (576, 576, 4, 4000), (1024, 576, 2, 6000))
    for _ in range(3):
        await submit(client, number=2, resolution="1024x576")  # 2 x 3 s each
    token = await submit(client, number=3, resolution="576x576")  # 3 x 1 s own
    await submit(client, number=2, resolution="1024x576")  # behind: not counted
    view = (await client.get(f"/v2/jobs/{token}")).json()
    assert view["position"] == 3
    assert view["eta_s"] == 3 * 6.0 + 3.0


async def test_v2_work_ahead_of_unlike_jobs_stays_within_the_stated_bound(
    client: httpx.AsyncClient, queue: Queue
) -> None:
    await report(queue, "gpu-1", (576, 576, 4, 4000), (1024, 576, 2, 6000))
    await submit(client, number=2, resolution="576x576")  # 2 x 1 s ahead
    await submit(client, number=1, resolution="1024x576")  # 1 x 3 s ahead
    token = await submit(client, number=3, resolution="576x576")  # 3 x 1 s own
    await submit(client, number=4, resolution="1024x576")  # 4 x 3 s behind
    view = (await client.get(f"/v2/jobs/{token}")).json()

    estimated = view["eta_s"] - 3.0
    # 2 of the 3 other new jobs are ahead: their mean (2 x 1 s + 5 x 3 s) / 3, twice
    assert estimated == pytest.approx((2 * 1.0 + 5 * 3.0) * 2 / 3, abs=0.05)
    exact, costs = 2 * 1.0 + 1 * 3.0, [2.0, 3.0, 12.0]  # seconds per other job
    ratio = max(costs) / min(costs)
    assert exact / ratio <= estimated <= exact * ratio


async def test_v2_work_ahead_counts_every_pending_job_ahead_in_full(
    client: httpx.AsyncClient, queue: Queue
) -> None:
    await report(queue, "gpu-1", (576, 576, 4, 4000))
    await report(queue, "gpu-2")
    await submit(client, number=4)
    await submit(client, number=1)
    for worker in ("gpu-1", "gpu-2"):
        assert await queue.claim(worker) is not None
    token = await submit(client, number=2)
    view = (await client.get(f"/v2/jobs/{token}")).json()
    assert view["position"] == 2
    assert view["eta_s"] == (4 + 1) / 2 + 2.0
