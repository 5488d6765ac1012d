"""Properties of the fair queue (broker/fair.py), with any interleaving of adds from
several clients and claims, on every engine of the `redis` fixture:

1. the order served is the fair definition's: start-time fair queuing, modelled here
   in a few lines of Python (start = max(V, the client's last finish), finish = start
   + cost, served by start tag then insertion, V = the start tag last served);
2. the place a job is shown (v2 position and legacy QueueLength) is the order in
   which it is then actually served: position = pending jobs + jobs served before it;
3. no client waits more than its fair share plus one job: while a job J of client c
   waits, every other client d is served at most the work of c's own jobs ahead of J
   (the one c had in service included) plus one job of d.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass, field

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from broker.fair import Scheduling, cost
from broker.queue import Queue
from tests.broker.helpers import check_indexes, token, tuned

CLIENTS = ["198.51.100.1", "198.51.100.2", "2001:db8:7::/64", "203.0.113.9"]
SIZES = [(576, 576), (768, 576), (1024, 576)]

ADD = st.tuples(
    st.just("add"), st.integers(0, len(CLIENTS) - 1), st.integers(1, 4), st.integers(0, 2)
)
CLAIM = st.tuples(st.just("claim"), st.just(0), st.just(0), st.just(0))
STEPS = st.lists(st.one_of(ADD, ADD, CLAIM), min_size=1, max_size=24)


@dataclass
class Job:
    token: str
    client: str
    cost: int
    added_at: int  # step number
    start: int = 0
    claimed_at: int | None = None
    # for the bound: c's work ahead of J when J was added (its unclaimed jobs, and its
    # job last taken into service, whose finish tag may still be ahead of V)
    ahead_of_it: int = 0


@dataclass
class Model:
    """Start-time fair queuing, as broker/fair.py defines it."""

    vtime: int = 0
    finish: dict[str, int] = field(default_factory=dict)
    jobs: list[Job] = field(default_factory=list)

    def add(self, job: Job) -> None:
        job.start = max(self.vtime, self.finish.get(job.client, 0))
        self.finish[job.client] = job.start + job.cost
        mine = [j for j in self.jobs if j.client == job.client]
        unclaimed = sum(j.cost for j in mine if j.claimed_at is None)
        served = [j for j in mine if j.claimed_at is not None]
        job.ahead_of_it = unclaimed + (served[-1].cost if served else 0)
        self.jobs.append(job)

    def next(self) -> Job | None:
        waiting = [j for j in self.jobs if j.claimed_at is None]
        return min(waiting, key=lambda j: (j.start, self.jobs.index(j)), default=None)

    def claim(self, step: int) -> Job | None:
        job = self.next()
        if job is not None:
            job.claimed_at = step
            self.vtime = max(self.vtime, job.start)
        return job


async def run(q: Queue, steps: list[tuple[str, int, int, int]]) -> Model:
    model = Model()
    for step, (kind, client, number, size) in enumerate(steps):
        if kind == "add":
            width, height = SIZES[size]
            job = Job(token(len(model.jobs)), CLIENTS[client], cost(number, width, height), step)
            await q.add_job(job.token, "p", number, width, height, client=job.client)
            model.add(job)
        else:
            expected = model.claim(step)
            claim = await q.claim("gpu", lease_ms=600_000)
            assert (claim and claim.job.token) == (expected and expected.token)
    return model


async def check_places_then_drain(q: Queue, model: Model, step: int) -> None:
    """Every waiting job's place, then the order the queue really serves them in."""
    pending = sum(j.claimed_at is not None for j in model.jobs)
    places = {}
    for job in model.jobs:
        if job.claimed_at is None:
            details = await q.job_details(job.token, 30_000)
            status = await q.status(job.token)
            assert details.position == status.queue_length
            places[job.token] = details.position
    served = []
    while (expected := model.claim(step)) is not None:
        claim = await q.claim("gpu", lease_ms=600_000)
        assert claim is not None and claim.job.token == expected.token
        served.append(claim.job.token)
        step += 1
    assert await q.claim("gpu") is None
    assert [places[t] for t in served] == list(range(pending, pending + len(served)))


def check_fair_share(model: Model) -> None:
    """While J waited, each other client was served at most J's client's own work
    ahead of J, plus one of its own jobs."""
    largest: dict[str, int] = {}
    for job in model.jobs:
        largest[job.client] = max(largest.get(job.client, 0), job.cost)
    for job in model.jobs:
        assert job.claimed_at is not None
        served: dict[str, int] = {}
        for other in model.jobs:
            if (
                other.client != job.client
                and other.claimed_at is not None
                and job.added_at < other.claimed_at < job.claimed_at
            ):
                served[other.client] = served.get(other.client, 0) + other.cost
        for client, work in served.items():
            assert work <= job.ahead_of_it + largest[client], (job, client, work)


@settings(
    max_examples=200,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(steps=STEPS)
async def test_fair_properties_order_places_and_share(
    queue: Queue, steps: list[tuple[str, int, int, int]]
) -> None:
    q = tuned(queue, key_prefix=f"fair-{uuid.uuid4().hex[:12]}", scheduling=Scheduling.FAIR)
    model = await run(q, steps)
    await check_indexes(q)
    await check_places_then_drain(q, model, len(steps))
    check_fair_share(model)


def test_fair_properties_the_share_check_refuses_first_come_first_served() -> None:
    """The bound is not vacuous: FIFO breaks it as soon as a heavy client is ahead."""
    model = Model()
    unit = cost(1, 576, 576)
    for i in range(4):
        model.add(Job(token(i), CLIENTS[0], unit, added_at=0))
    model.add(Job(token(9), CLIENTS[1], unit, added_at=1))
    for step, job in enumerate(model.jobs, start=2):  # served in the order added
        job.claimed_at = step
    try:
        check_fair_share(model)
    except AssertionError:
        return
    raise AssertionError("FIFO passed the fair-share check")
