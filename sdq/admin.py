"""`sdq admin`: queue control for operators, on the queue the SDQ_* settings name
(SDQ_REDIS_URL, SDQ_KEY_PREFIX, ...), talking to Redis as every other process does.

    sdq admin status              depth per state, top talkers, workers, last actions
    sdq admin pause | resume      workers take nothing while paused; adds go on
    sdq admin retry TOKEN         a failed job back to new, at its old place
    sdq admin cancel TOKEN        as the v2 DELETE
    sdq admin cancel-client KEY   every open job of one client key (an address, or
                                  an IPv6 network as the API counts it: 2001:db8::/64)

Each action is one atomic script (broker/admin.py) and is audited twice: the script
appends who/what/when/outcome to the queue's audit list ({p}:audit, shown by
`status` to every operator), and this command logs the same line (stderr; one JSON
object with SDQ_LOG_JSON=true). `--by` names who acts (default: user@host); no
secret (the Redis URL and its password included) is ever printed or logged.
Exit status: 0 done, 1 refused (unknown token, or a job in the wrong state),
2 invalid settings, 3 Redis unreachable.
"""

from __future__ import annotations

import argparse
import asyncio
import getpass
import logging
import socket
import sys
import time
from collections.abc import Awaitable, Callable

from broker.admin import AdminStatus, QueueAdmin
from broker.connection import create_redis
from broker.errors import InvalidTransition, JobNotFound, StorageUnavailable
from broker.queue import Queue
from broker.settings import BrokerSettings
from sdq.logs import configure_logging

log = logging.getLogger("sdq.admin")

EXIT_REFUSED, EXIT_UNREACHABLE = 1, 3
ACTIONS = ("pause", "resume", "retry", "cancel", "cancel-client")


def default_actor() -> str:
    try:
        user = getpass.getuser()
    except (KeyError, OSError):  # no name for this uid (a container)
        user = "unknown"
    return f"{user}@{socket.gethostname()}"


class AdminSettings(BrokerSettings):
    log_json: bool = False  # SDQ_LOG_JSON, as the API's


def run(args: argparse.Namespace) -> int:
    settings = AdminSettings()
    configure_logging(json_lines=settings.log_json)
    by = args.by or default_actor()
    return asyncio.run(_run(settings, args, by))


async def _run(settings: BrokerSettings, args: argparse.Namespace, by: str) -> int:
    redis = create_redis(settings)
    admin = QueueAdmin(Queue(redis, settings), by)
    try:
        if args.action == "status":
            print(render_status(await admin.status(args.top, args.entries)))
            return 0
        return await _act(admin, args, by)
    except StorageUnavailable as exc:
        print(f"sdq admin: Redis unreachable ({exc})", file=sys.stderr)
        return EXIT_UNREACHABLE
    finally:
        await redis.aclose()


async def _act(admin: QueueAdmin, args: argparse.Namespace, by: str) -> int:
    target = getattr(args, "token", None) or getattr(args, "client", None) or ""
    steps: dict[str, Callable[[], Awaitable[str]]] = {
        "pause": lambda: _said(admin.pause(), was="paused already", was_not="paused"),
        "resume": lambda: _said(admin.resume(), was="running (was paused)", was_not="running"),
        "retry": lambda: _done(admin.retry(target), "new again"),
        "cancel": lambda: _cancelled(admin, target),
        "cancel-client": lambda: _cancelled_client(admin, target),
    }
    try:
        outcome = await steps[args.action]()
    except (JobNotFound, InvalidTransition) as exc:
        reason = "not found" if isinstance(exc, JobNotFound) else "not in a state that allows it"
        _audit(args.action, target, by, f"refused: {reason}")
        print(f"sdq admin {args.action}: refused, {reason}", file=sys.stderr)
        return EXIT_REFUSED
    _audit(args.action, target, by, outcome)
    print(f"{args.action} {target}".strip() + f": {outcome}")
    return 0


async def _said(call: Awaitable[bool], was: str, was_not: str) -> str:
    """The outcome, by whether the queue was paused before."""
    return was if await call else was_not


async def _done(call: Awaitable[None], outcome: str) -> str:
    await call
    return outcome


async def _cancelled(admin: QueueAdmin, token: str) -> str:
    previous = await admin.cancel(token)
    return "cancelled already" if previous.value == "cancelled" else f"cancelled (was {previous})"


async def _cancelled_client(admin: QueueAdmin, client: str) -> str:
    cancelled, dropped = await admin.cancel_client(client)
    return f"{cancelled} jobs cancelled, {dropped} entries of lost jobs dropped"


def _audit(action: str, target: str, by: str, outcome: str) -> None:
    log.info(
        "admin %s %s by %s: %s",
        action,
        target or "-",
        by,
        outcome,
        extra={"action": action, "target": target, "by": by},
    )


def _ago(now_ms: int, then_ms: int) -> str:
    seconds = max(0, now_ms - then_ms) / 1000
    return f"{seconds:.0f} s ago" if seconds < 120 else f"{seconds / 60:.0f} min ago"


def render_status(status: AdminStatus) -> str:
    f = status.figures
    now = f.now_ms
    lines = [
        "queue: "
        + (
            f"PAUSED {_ago(now, status.paused_ms)} by {status.paused_by}"
            if status.paused_ms is not None
            else "running"
        ),
        f"depth: new {f.new} (waiting {f.waiting}, handed out {f.reserved}), "
        f"pending {f.pending}; images new {f.new_images}, pending {f.pending_images}",
        "lifetime: " + ", ".join(f"{k} {v}" for k, v in sorted(f.counters.items())),
        "top talkers (open images, open jobs):",
    ]
    lines += [f"  {t.client:<40} {t.images:>6} {t.jobs:>5}" for t in status.talkers] or ["  none"]
    lines.append("workers (last seen, GPU busy and images/s over its last report, current job):")
    for w in status.workers:
        ratio = "-" if w.figures is None else f"{w.figures.busy_ratio:.0%}"
        rate = "-" if w.figures is None else f"{w.figures.images_per_s:.2f}"
        job = "idle" if w.job is None else f"{w.job} for {_ago(now, w.job_started_ms or now)}"
        seen = _ago(now, w.last_seen_ms)
        lines.append(f"  {w.worker:<32} {seen:>12} {ratio:>5} {rate:>6}  {job}")
    if not status.workers:
        lines.append("  none")
    lines.append("last actions:")
    for a in status.actions:
        when = time.strftime("%Y-%m-%d %H:%M:%S", time.gmtime(a.at_ms / 1000))
        lines.append(f"  {when}Z {a.action} {a.target or '-'} by {a.by}: {a.outcome}")
    if not status.actions:
        lines.append("  none")
    return "\n".join(lines)
