"""Fills a queue to a given depth quickly, with jobs in every live state.

The jobs go in through the broker's own bulk path (Queue.import_jobs: one
pipelined round trip per batch of import_job.lua calls), so the fill follows
the broker's key layout whatever it becomes. Creation times are spread over
the past so ages and QueueLength values look like a real queue's; the states
are mixed along the whole queue, so a token at the tail counts many earlier
unfinished jobs.
"""

from __future__ import annotations

import asyncio
import random
import secrets
from dataclasses import dataclass

from broker.connection import create_redis
from broker.job import ImportedJob
from broker.queue import Queue
from broker.settings import BrokerSettings
from broker.states import JobState

BATCH = 5_000
SPACING_MS = 50  # creation times 50 ms apart: 100,000 jobs span about 83 minutes
STATE_WEIGHTS = {JobState.NEW: 3, JobState.PENDING: 2, JobState.COMPLETE: 5}
_RESOLUTIONS = ((1024, 576), (768, 576), (576, 768), (576, 576))


@dataclass(frozen=True, slots=True)
class Filled:
    tokens: list[str]  # in creation order
    states: dict[str, int]  # jobs per state


def fill(settings: BrokerSettings, depth: int, seed: int = 2) -> Filled:
    """Stores `depth` jobs in the queue of `settings` (which should be empty)."""
    return asyncio.run(_fill(settings, depth, seed))


async def _fill(settings: BrokerSettings, depth: int, seed: int) -> Filled:
    chooser = random.Random(seed)
    states = chooser.choices(list(STATE_WEIGHTS), list(STATE_WEIGHTS.values()), k=depth)
    tokens = [secrets.token_hex(16) for _ in range(depth)]
    redis = create_redis(settings)
    try:
        seconds, micros = await redis.time()
        now_ms = seconds * 1000 + micros // 1000
        first_ms = now_ms - depth * SPACING_MS
        queue = Queue(redis, settings)
        for start in range(0, depth, BATCH):
            jobs = [
                _job(index, tokens[index], states[index], first_ms + index * SPACING_MS)
                for index in range(start, min(start + BATCH, depth))
            ]
            outcomes = await queue.import_jobs(jobs)
            if any(outcome != "imported" for outcome in outcomes):
                raise RuntimeError(f"fill: not every job was stored: {set(outcomes)}")
    finally:
        await redis.aclose()
    return Filled(tokens, {state.value: states.count(state) for state in STATE_WEIGHTS})


def _job(index: int, token: str, state: JobState, created_ms: int) -> ImportedJob:
    width, height = _RESOLUTIONS[index % len(_RESOLUTIONS)]
    completed = created_ms + 20_000 if state is JobState.COMPLETE else None
    return ImportedJob(
        token=token,
        prompt=f"bench prompt {index}",
        number=1 + index % 4,
        width=width,
        height=height,
        state=state,
        created_ms=created_ms,
        completed_ms=completed,
    )


def poll_tokens(filled: Filled, spread: int = 1_000, tail: int = 50) -> list[str]:
    """Tokens a poller rotates through: `spread` evenly over the queue plus its tail.

    An empty queue gives tokens that exist nowhere (each poll answers 404, as
    the original's empty-table figure did)."""
    tokens = filled.tokens
    if not tokens:
        return [secrets.token_hex(16) for _ in range(spread)]
    step = max(1, len(tokens) // spread)
    return tokens[::step] + tokens[-tail:]
