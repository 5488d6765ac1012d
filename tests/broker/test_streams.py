"""Per-client event-stream places (hold_stream / release_stream): counted across
every replica, extended while a stream lives, freed when it ends or its replica dies."""

from __future__ import annotations

import asyncio

import pytest

from broker.errors import TooManyStreams
from broker.queue import Queue

CLIENT = "198.51.100.7"


async def test_a_client_holds_at_most_its_cap_of_streams(queue: Queue) -> None:
    for i in range(3):
        await queue.hold_stream(CLIENT, f"s{i}", max_streams=3, hold_ms=10_000)
    with pytest.raises(TooManyStreams):
        await queue.hold_stream(CLIENT, "s3", max_streams=3, hold_ms=10_000)
    await queue.hold_stream("203.0.113.9", "other", max_streams=3, hold_ms=10_000)  # per client


async def test_a_stream_at_the_cap_can_extend_its_own_hold(queue: Queue) -> None:
    for i in range(2):
        await queue.hold_stream(CLIENT, f"s{i}", max_streams=2, hold_ms=10_000)
    await queue.hold_stream(CLIENT, "s0", max_streams=2, hold_ms=10_000)  # a renewal


async def test_a_released_place_is_free_again(queue: Queue) -> None:
    await queue.hold_stream(CLIENT, "a", max_streams=1, hold_ms=10_000)
    await queue.release_stream(CLIENT, "a")
    await queue.hold_stream(CLIENT, "b", max_streams=1, hold_ms=10_000)


async def test_a_hold_not_extended_ends_by_itself(queue: Queue) -> None:
    """A replica that died cannot release its streams: their holds run out."""
    await queue.hold_stream(CLIENT, "dead", max_streams=1, hold_ms=50)
    await asyncio.sleep(0.2)
    await queue.hold_stream(CLIENT, "alive", max_streams=1, hold_ms=10_000)
