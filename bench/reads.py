"""`python -m bench.reads`: what one v2 read (`GET /v2/jobs/{t}`, an event stream's
poll) costs Redis, next to the legacy /getJobStatus read, at several queue depths.

Each read is one script call; its time inside Redis is taken from SLOWLOG (every
command logged, `slowlog-log-slower-than 0`), so the client's own overhead is left
out. Three reads per depth, side by side in one run on one engine:

- get_status.lua (the legacy read: one ZCOUNT), for scale;
- job_details.lua (the v2 read), FIFO and fair: the place is ZRANK/ZCOUNT, the work
  ahead comes from running sums (O(1));
- the v2 read as it was before (job_details of 2025-11: every job hash ahead read, up
  to SDQ_ETA_AHEAD_LIMIT = 200), reproduced below as a script of its own.

The job read is the last one queued (the most work ahead); two jobs are pending.

    python -m bench.reads                 # depths 0, 300, 3000; 400 reads each
    python -m bench.reads --depths 300 --reads 1000
"""

from __future__ import annotations

import argparse
import asyncio
import functools
import statistics
import uuid
from collections.abc import Awaitable, Callable, Sequence

from redis.asyncio import Redis

from broker.fair import Scheduling
from broker.queue import Queue
from broker.settings import BrokerSettings
from sdq.embedded_redis import EmbeddedRedis

# The v2 read before: ZRANK, then the hash of each job ahead (up to ahead_limit).
BEFORE = """
local rank = redis.call('ZRANK', KEYS[2], redis.call('HGET', KEYS[1], 'member'))
local f = redis.call('HMGET', KEYS[1], 'state', 'created_ms', 'attempts', 'progress',
  'number', 'width', 'height', 'prompt', 'started_ms', 'finished_ms', 'cancel_requested',
  'last_error', 'member')
local sums, order = {}, {}
local count = math.min(rank or 0, tonumber(ARGV[2]))
if count > 0 then
  for _, member in ipairs(redis.call('ZRANGE', KEYS[2], 0, count - 1)) do
    local j = redis.call('HMGET', KEYS[6] .. string.sub(member, 17), 'number', 'width',
      'height', 'progress')
    if j[1] then
      local res = j[2] .. 'x' .. j[3]
      if not sums[res] then sums[res] = 0; order[#order + 1] = res end
      sums[res] = sums[res] + math.max(0, tonumber(j[1]) - tonumber(j[4] or 0))
    end
  end
end
local t = redis.call('TIME')
return {'OK', t[1], f[1], redis.call('ZCOUNT', KEYS[4], t[1] * 1000 - ARGV[1], '+inf'),
  redis.call('ZCARD', KEYS[3]), #order, redis.call('HGETALL', KEYS[5])}
"""


async def fill(queue: Queue, depth: int, clients: int = 20) -> str:
    """`depth` jobs of 1..4 images from `clients` clients, two claimed; returns the last."""
    last = ""
    for i in range(depth + 1):
        last = uuid.uuid4().hex
        await queue.add_job(last, f"job {i}", 1 + i % 4, 576, 576, client=f"10.0.0.{i % clients}")
    for worker in ("w1", "w2"):
        await queue.claim(worker)
    return last


async def redis_us(redis: Redis, calls: int, call: Callable[[], Awaitable[object]]) -> float:
    """Median time inside Redis of one call (SLOWLOG), over `calls` calls."""
    for _ in range(20):
        await call()
    await redis.slowlog_reset()
    for _ in range(calls):
        await call()
    entries = await redis.slowlog_get(calls + 100)
    times = [
        e["duration"]
        for e in entries
        if str(e["command"]).startswith(("EVALSHA", "b'EVALSHA", "EVAL", "b'EVAL"))
    ]
    return statistics.median(times) if times else float("nan")


async def measure(url: str, depths: Sequence[int], calls: int) -> list[tuple[int, list[float]]]:
    redis = Redis.from_url(url, decode_responses=True)
    await redis.config_set("slowlog-log-slower-than", 0)
    await redis.config_set("slowlog-max-len", calls + 1000)
    before = redis.register_script(BEFORE)
    rows = []
    try:
        for depth in depths:
            figures: list[float] = []
            fifo = Queue(redis, BrokerSettings(key_prefix=f"reads-{uuid.uuid4().hex[:8]}"))
            fair = Queue(
                redis,
                BrokerSettings(
                    key_prefix=f"reads-{uuid.uuid4().hex[:8]}", scheduling=Scheduling.FAIR
                ),
            )
            last, fair_last = await fill(fifo, depth), await fill(fair, depth)
            k = fifo.keys
            old_keys = [k.job(last), k.active, k.leases, k.workers, k.render_ms, k.job_prefix]
            reads: list[Callable[[], Awaitable[object]]] = [
                functools.partial(fifo.status, last),
                functools.partial(fifo.job_details, last, 30_000),
                functools.partial(fair.job_details, fair_last, 30_000),
                functools.partial(before, keys=old_keys, args=[30_000, 200]),
            ]
            for call in reads:
                figures.append(await redis_us(redis, calls, call))
            rows.append((depth, figures))
    finally:
        await redis.aclose()
    return rows


def table(rows: list[tuple[int, list[float]]]) -> str:
    head = ["queued jobs", "legacy status", "v2 read, FIFO", "v2 read, fair", "v2 read before"]
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    for depth, (status, fifo, fair, before) in rows:
        cells = [f"{depth:,}", *(f"{us:.0f} µs" for us in (status, fifo, fair, before))]
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines)


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.reads", description=__doc__)
    parser.add_argument("--depths", type=int, nargs="+", default=[0, 300, 3000])
    parser.add_argument("--reads", type=int, default=400, help="reads per figure")
    args = parser.parse_args(argv)
    engine = EmbeddedRedis().start()
    try:
        rows = asyncio.run(measure(engine.url, args.depths, args.reads))
    finally:
        engine.stop()
    print("Redis time per read (median, SLOWLOG), the job read being the last queued:")
    print(table(rows))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
