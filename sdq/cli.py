"""The `sdq` command: one entry point for every process of the service.

Each subcommand is one function; its heavy imports (uvicorn, torch, boto3)
happen only when it runs. Invalid settings end any of them with exit 2 and a
line per problem, never a traceback.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Any

from pydantic import ValidationError


def _up(args: argparse.Namespace) -> int:
    from sdq.up import up

    return up(
        args.data_dir,
        args.port,
        worker=not args.no_worker,
        host=args.host,
        public_without_captcha=args.allow_public_without_captcha,
    )


def _cluster(args: argparse.Namespace) -> int:
    from sdq.cluster import run_cluster

    replicas, workers = max(1, args.replicas), max(0, args.workers)
    return run_cluster(args.data_dir, args.port, replicas, workers, args.transport)


def _chaos(args: argparse.Namespace) -> int:
    from sdq.chaos import Options, run_chaos

    low, high = sorted(args.interval)
    return run_chaos(
        Options(
            duration_s=args.duration,
            seed=args.seed,
            users=max(1, args.users),
            replicas=max(1, args.replicas),
            workers=max(1, args.workers),
            render_ms=max(0, args.render_ms),
            interval_s=(max(0.1, low), max(0.1, high)),
            pause_s=max(0.0, args.pause),
            max_faults=max(0, args.max_faults),
            kinds=[kind for kind in args.faults.split(",") if kind],
            drain_s=args.drain,
            data_dir=args.data_dir,
            attach_url=args.attach,
            redis_url=args.redis_url,
            key_prefix=args.key_prefix,
            fault_cmds=[tuple(cmd) for cmd in args.fault_cmd or ()],
        )
    )


def _api(args: argparse.Namespace) -> int:
    from api.settings import ApiSettings
    from sdq.serve import serve

    serve(ApiSettings(**_overrides(args, ["host", "port", "workers"])))
    return 0


def _worker(args: argparse.Namespace) -> int:
    from gpu_worker.settings import WorkerSettings
    from sdq.worker import run_worker

    overrides = _overrides(args, ["transport", "renderer", "storage", "api_url"])
    return run_worker(WorkerSettings(**overrides))


def _import_sqlite(args: argparse.Namespace) -> int:
    from broker.settings import BrokerSettings
    from sdq.migrate.command import import_sqlite

    return import_sqlite(
        args.path,
        BrokerSettings(),
        dry_run=args.dry_run,
        batch_size=args.batch_size,
        show_secrets=not args.no_secrets,
    )


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="sdq", description=__doc__.splitlines()[0])
    commands = parser.add_subparsers(dest="command", required=True)

    up = commands.add_parser("up", help="run API + worker + embedded Redis (quick start)")
    up.add_argument("--data-dir", type=Path, default=Path("sdq-data"))
    up.add_argument("--port", type=int, default=9090)
    up.add_argument("--no-worker", action="store_true", help="start the API only")
    up.add_argument(
        "--host", default="127.0.0.1", help="listen address (default: this machine only)"
    )
    up.add_argument(
        "--allow-public-without-captcha",
        action="store_true",
        help="with a non-loopback --host and no SDQ_HCAPTCHA_SECRET: serve anyway",
    )
    up.set_defaults(run=_up)

    cluster = commands.add_parser("cluster", help="run the compose topology as local processes")
    cluster.add_argument("--data-dir", type=Path, default=Path("sdq-cluster-data"))
    cluster.add_argument("--port", type=int, default=9090, help="the load balancer's port")
    cluster.add_argument("--replicas", type=int, default=3, help="API replicas behind nginx")
    cluster.add_argument("--workers", type=int, default=2, help="test-pattern workers")
    cluster.add_argument("--transport", choices=["redis", "http"], default="redis")
    cluster.set_defaults(run=_cluster)

    chaos = commands.add_parser(
        "chaos", help="SIGKILL workers, replicas and Redis under simulated users; count lost jobs"
    )
    chaos.add_argument("--duration", type=float, default=60.0, help="seconds of load and faults")
    chaos.add_argument(
        "--seed", type=int, help="fault times and targets (default: random, printed)"
    )
    chaos.add_argument("--users", type=int, default=20, help="simulated frontend users")
    chaos.add_argument("--replicas", type=int, default=3, help="API replicas behind nginx")
    chaos.add_argument("--workers", type=int, default=3, help="test-pattern workers")
    chaos.add_argument("--render-ms", type=int, default=400, help="simulated render time per image")
    chaos.add_argument(
        "--interval", type=float, nargs=2, default=[2.0, 6.0], metavar=("MIN", "MAX"),
        help="seconds between one fault's restart and the next kill (uniform)",
    )  # fmt: skip
    chaos.add_argument(
        "--pause", type=float, default=1.0, help="seconds a killed process stays down"
    )
    chaos.add_argument("--max-faults", type=int, default=30, help="most faults in one run")
    chaos.add_argument(
        "--faults", default="worker,replica,redis", help="kinds to inject, comma-separated"
    )
    chaos.add_argument(
        "--drain", type=float, default=60.0, help="most seconds to wait for the queue to drain"
    )
    chaos.add_argument("--data-dir", type=Path, help="keep the cluster's data and logs here")
    chaos.add_argument(
        "--attach", metavar="URL", help="a running cluster's load balancer instead of a new cluster"
    )
    chaos.add_argument("--redis-url", help="its Redis (with --attach): the accounting reads it")
    chaos.add_argument("--key-prefix", default="sdq", help="its SDQ_KEY_PREFIX (with --attach)")
    chaos.add_argument(
        "--fault-cmd", nargs=3, action="append", metavar=("NAME", "KILL", "RESTART"),
        help="with --attach: a fault as two commands (no shell), e.g. "
        "worker 'docker compose kill worker' 'docker compose start worker'",
    )  # fmt: skip
    chaos.set_defaults(run=_chaos)

    api = commands.add_parser("api", help="serve the HTTP API (settings from SDQ_*)")
    api.add_argument("--host")
    api.add_argument("--port", type=int)
    api.add_argument("--workers", type=int)
    api.set_defaults(run=_api)

    worker = commands.add_parser("worker", help="run a GPU worker (settings from SDQ_*)")
    worker.add_argument("--transport", choices=["http", "redis"])
    worker.add_argument("--renderer", choices=["diffusers", "test-pattern"])
    worker.add_argument("--storage", choices=["local", "s3"])
    worker.add_argument("--api-url")
    worker.set_defaults(run=_worker)

    migrate = commands.add_parser(
        "import-sqlite", help="import the original service's SQLite database (SDQ_* settings)"
    )
    migrate.add_argument("path", type=Path, help="the original's database file, e.g. queue.db")
    migrate.add_argument("--dry-run", action="store_true", help="check the rows, write nothing")
    migrate.add_argument("--batch-size", type=int, default=1000, help="jobs per round trip")
    migrate.add_argument("--no-secrets", action="store_true", help="do not print the secrets")
    migrate.set_defaults(run=_import_sqlite)
    _admin_parser(commands)
    return parser


def _admin(args: argparse.Namespace) -> int:
    from sdq.admin import run

    return run(args)


def _admin_parser(commands: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    admin = commands.add_parser(
        "admin", help="queue control: status, pause, resume, retry, cancel (SDQ_* settings)"
    )
    actions = admin.add_subparsers(dest="action", required=True)
    status = actions.add_parser("status", help="depth, top talkers, workers, last actions")
    status.add_argument("--top", type=int, default=10, help="clients shown")
    status.add_argument("--entries", type=int, default=10, help="audit entries shown")
    actions.add_parser("pause", help="workers take no job until resumed (adds go on)")
    actions.add_parser("resume", help="workers take jobs again")
    for name, what, helptext in (
        ("retry", "token", "a failed job back to new, at its old place"),
        ("cancel", "token", "cancel one open job"),
        ("cancel-client", "client", "cancel every open job of one client key"),
    ):
        actions.add_parser(name, help=helptext).add_argument(what)
    for parser in actions.choices.values():
        parser.add_argument("--by", help="who acts, for the audit (default: user@host)")
    admin.set_defaults(run=_admin)


def _overrides(args: argparse.Namespace, names: list[str]) -> dict[str, Any]:
    return {name: getattr(args, name) for name in names if getattr(args, name) is not None}


def main(argv: list[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    try:
        code: int = args.run(args)
    except ValidationError as exc:
        print(f"sdq {args.command}: invalid settings:", file=sys.stderr)
        for error in exc.errors():
            where = ".".join(str(part) for part in error["loc"]) or "settings"
            print(f"  {where}: {error['msg']}", file=sys.stderr)
        return 2
    return code


if __name__ == "__main__":
    sys.exit(main())
