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

    return up(args.data_dir, args.port, worker=not args.no_worker)


def _cluster(args: argparse.Namespace) -> int:
    from sdq.cluster import run_cluster

    replicas, workers = max(1, args.replicas), max(0, args.workers)
    return run_cluster(args.data_dir, args.port, replicas, workers, args.transport)


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
    up.set_defaults(run=_up)

    cluster = commands.add_parser("cluster", help="run the compose topology as local processes")
    cluster.add_argument("--data-dir", type=Path, default=Path("sdq-cluster-data"))
    cluster.add_argument("--port", type=int, default=9090, help="the load balancer's port")
    cluster.add_argument("--replicas", type=int, default=3, help="API replicas behind nginx")
    cluster.add_argument("--workers", type=int, default=2, help="test-pattern workers")
    cluster.add_argument("--transport", choices=["redis", "http"], default="redis")
    cluster.set_defaults(run=_cluster)

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
    return parser


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
