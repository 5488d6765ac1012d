"""Keys: every key of one queue carries the prefix as its hash tag, so a script's keys
share one Redis Cluster slot; two prefixes are two queues that never meet."""

from __future__ import annotations

import pytest
from pydantic import ValidationError
from redis.crc import key_slot

from broker.errors import JobNotFound
from broker.keys import QueueKeys
from broker.queue import Queue
from broker.settings import BrokerSettings
from broker.states import JobState
from tests.broker.helpers import add, token, tuned


def crc16_slot(key: str) -> int:
    """Redis Cluster's slot, written out from the spec (CRC16-CCITT/XMODEM of the
    hash tag, mod 16384), to check redis-py's helper as well as the keys."""
    data = key.encode()
    start = data.find(b"{")
    if start >= 0:
        end = data.find(b"}", start + 1)
        if end > start + 1:
            data = data[start + 1 : end]
    crc = 0
    for byte in data:
        crc ^= byte << 8
        for _ in range(8):
            crc = ((crc << 1) ^ 0x1021) if crc & 0x8000 else crc << 1
            crc &= 0xFFFF
    return crc % 16384


def every_key(keys: QueueKeys) -> list[str]:
    """Each key QueueKeys can name (properties and per-job or per-client keys)."""
    names = []
    for name in dir(QueueKeys):
        if name.startswith("_") or name in ("prefix", "tag"):
            continue
        attribute = getattr(keys, name)
        if isinstance(attribute, str):
            names.append(attribute)
        elif callable(attribute):
            names.append(attribute("0123456789abcdef0123456789abcdef"))
    return names


@pytest.mark.parametrize("prefix", ["sdq", "prod:eu-1", "a", "x" * 80, "über"])
def test_keys_of_one_queue_share_one_cluster_slot(prefix: str) -> None:
    keys = QueueKeys(prefix)
    names = every_key(keys)

    assert len(names) >= 10
    assert all(name.startswith("{" + prefix + "}:") for name in names)
    slots = {key_slot(name.encode()) for name in names}
    assert slots == {crc16_slot(prefix)}
    assert {crc16_slot(name) for name in names} == slots


def test_keys_crc16_matches_the_cluster_spec_example() -> None:
    # The Redis Cluster spec: CRC16 of "123456789" is 0x31C3.
    assert crc16_slot("123456789") == 0x31C3 % 16384
    assert crc16_slot("{user1000}.following") == crc16_slot("{user1000}.followers")


async def test_keys_written_by_the_scripts_all_carry_the_tag(queue: Queue) -> None:
    q = tuned(queue, max_attempts=1)
    for i in range(4):
        await add(q, i)
    await q.next_job()
    await q.set_state(token(1), JobState.PENDING)
    claim = await q.claim("w")
    assert claim is not None
    await q.release(claim.job.token, claim.fence, "x")
    await q.requeue_expired()

    written = [key async for key in q.redis.scan_iter(match=f"*{q.settings.key_prefix}*")]

    assert len(written) >= 9  # 4 jobs, seq, waiting, active, reserved, leases, stats...
    assert all(key.startswith(q.keys.tag + ":") for key in written)
    assert {key_slot(key.encode()) for key in written} == {crc16_slot(q.settings.key_prefix)}


async def test_keys_two_prefixes_do_not_see_each_others_jobs(queue: Queue) -> None:
    other = tuned(queue, key_prefix="other-" + token(7))
    await add(queue, 1)
    await add(other, 2)

    first, second = await queue.next_job(), await other.next_job()

    assert first is not None and first.token == token(1)
    assert second is not None and second.token == token(2)
    with pytest.raises(JobNotFound):
        await other.status(token(1))
    with pytest.raises(JobNotFound):
        await queue.set_state(token(2), JobState.PENDING)
    assert (await queue.counts())["added"] == (await other.counts())["added"] == 1


async def test_keys_same_token_under_two_prefixes_is_two_jobs(queue: Queue) -> None:
    other = tuned(queue, key_prefix="other-" + token(8))
    await queue.add_job(token(1), "here", 1, 576, 576)
    await other.add_job(token(1), "there", 2, 768, 576)

    assert (await queue.status(token(1))).number == 1
    assert (await other.status(token(1))).number == 2


@pytest.mark.parametrize("prefix", ["", "a{b", "a}b", "with space", "tab\t"])
def test_keys_prefix_that_would_break_the_hash_tag_is_refused(prefix: str) -> None:
    with pytest.raises(ValidationError):
        BrokerSettings(key_prefix=prefix)


def test_keys_prefix_comes_from_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("SDQ_KEY_PREFIX", "from-env")

    assert QueueKeys(BrokerSettings().key_prefix).waiting == "{from-env}:waiting"
