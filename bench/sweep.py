"""How fast leases that expired together come back, when nothing polls /getNextJob.

    python -m bench.sweep                 # 3,000 leases, the default sweep settings

Claims N jobs with a short lease on a real Redis engine, lets the leases run out
together (a rack of GPU workers lost power), then runs the API's periodic sweep
(api/sweeper.py) and reports how long until every job is claimable again: with the
sweep repeating full batches at once (today) and with one batch per interval (before).
"""

from __future__ import annotations

import argparse
import asyncio
import time
import uuid

from redis.asyncio import Redis

from api.sweeper import sweep_once
from broker.queue import Queue
from broker.settings import BrokerSettings
from sdq.embedded_redis import EmbeddedRedis


async def expired_queue(url: str, jobs: int) -> Queue:
    redis = Redis.from_url(url, decode_responses=True)
    queue = Queue(redis, BrokerSettings(key_prefix=f"sweep-{uuid.uuid4().hex[:8]}"))
    for i in range(jobs):
        await queue.add_job(f"{i:032x}", "p", 1, 576, 576)
    lease_ms = 2000 + jobs  # outlives the claims themselves (each claim also sweeps)
    for _ in range(jobs):
        assert await queue.claim("gone", lease_ms=lease_ms) is not None
    await asyncio.sleep(lease_ms / 1000 + 0.1)  # every lease has run out now
    return queue


async def recovery_s(url: str, jobs: int, interval_s: float, repeat: bool) -> tuple[float, int]:
    """Seconds (simulated intervals included) until every lease is back, and intervals."""
    queue = await expired_queue(url, jobs)
    limit = queue.settings.sweep_limit
    started, intervals = time.perf_counter(), 0
    while (await queue.figures()).pending > 0:
        intervals += 1
        if repeat:
            await sweep_once(queue, "bench", interval_s=0.001)  # the lock: let each call sweep
        else:
            await queue.requeue_expired()  # one batch of `limit`, as before
    swept = time.perf_counter() - started
    await queue.redis.aclose()
    # Each interval but the first waits interval_s for the next sweep.
    return swept + (intervals - 1) * interval_s, intervals if repeat else -(-jobs // limit)


async def main_async(jobs: int, interval_s: float) -> None:
    engine = EmbeddedRedis().start()
    try:
        now_s, now_n = await recovery_s(engine.url, jobs, interval_s, repeat=True)
        old_s, old_n = await recovery_s(engine.url, jobs, interval_s, repeat=False)
    finally:
        engine.stop()
    limit = BrokerSettings().sweep_limit
    print(f"{jobs} leases expired at once; sweep every {interval_s:g} s, {limit} per call")
    print(f"{'sweep':<30} {'intervals':>9} {'seconds':>9}")
    print(f"{'repeats full batches (now)':<30} {now_n:>9} {now_s:>9.1f}")
    print(f"{'one batch per interval (before)':<30} {old_n:>9} {old_s:>9.1f}")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.sweep", description=__doc__)
    parser.add_argument("--jobs", type=int, default=3000)
    parser.add_argument("--interval", type=float, default=5.0, help="SDQ_SWEEP_INTERVAL_S")
    args = parser.parse_args(argv)
    asyncio.run(main_async(args.jobs, args.interval))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
