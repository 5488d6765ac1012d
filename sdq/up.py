"""`sdq up`: the whole service on one machine, for a first look.

Starts a private Redis-compatible server with append-only persistence in the
data folder (unless SDQ_REDIS_URL names one), the API and one worker, as child
processes, and prints where everything is. Ctrl-C stops them all.
"""

from __future__ import annotations

import ipaddress
import os
import secrets
import sys
from pathlib import Path

from sdq.embedded_redis import EmbeddedRedis
from sdq.supervisor import Process, Supervisor, spawn

BANNER = """
  Stable Diffusion job queue is up.

    demo page      http://127.0.0.1:{port}/
    API            http://127.0.0.1:{port}/   (docs: /docs, v2: /v2/jobs)
    listening on   {host}:{port}{reach}
    Redis          {redis}
    data folder    {data}
    backend secret {secret}

  Try it:
    curl 'http://127.0.0.1:{port}/addJob?prompt=An+apple+on+a+wooden+table&number=2&resolution=576x576&captcha=demo'
    curl 'http://127.0.0.1:{port}/getJobStatus?token=<token>'
    open  http://127.0.0.1:{port}/images/<token>/00000.png
{captcha}
  Ctrl-C stops everything.
"""
NO_CAPTCHA = "\n  WARNING: captcha verification is OFF (no SDQ_HCAPTCHA_SECRET): demo use only.\n"
LOCAL_ONLY = " (this machine only: --host 0.0.0.0 to serve the network)"
REFUSED = (
    "sdq up: refusing to serve {host} with captcha verification off: anyone who can reach "
    "it could queue GPU work. Set SDQ_HCAPTCHA_SECRET, or pass --allow-public-without-captcha "
    "as well if that is really what you want."
)


def is_loopback(host: str) -> bool:
    """Whether `host` is reachable from this machine only."""
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False


def backend_secret(data_dir: Path) -> str:
    """The demo's backend secret: kept in the data folder so restarts keep it."""
    path = data_dir / "backend-secret"
    if not path.exists():
        path.write_text(secrets.token_urlsafe(24) + "\n", encoding="utf-8")
        path.chmod(0o600)
    return path.read_text(encoding="utf-8").strip()


def up(
    data_dir: Path,
    port: int,
    worker: bool = True,
    host: str = "127.0.0.1",
    public_without_captcha: bool = False,
) -> int:
    """The command. It listens on loopback unless told otherwise, and a host others can
    reach with captcha checks off needs a second, explicit flag (exit 2 without)."""
    env = dict(os.environ)
    captcha = bool(env.get("SDQ_HCAPTCHA_SECRET"))
    if not captcha and not is_loopback(host) and not public_without_captcha:
        print(REFUSED.format(host=host), file=sys.stderr)
        return 2
    data_dir.mkdir(parents=True, exist_ok=True)
    engine = None
    if not env.get("SDQ_REDIS_URL"):
        engine = EmbeddedRedis(data_dir=data_dir / "redis").start()
        env["SDQ_REDIS_URL"] = engine.url
    secret = env.get("SDQ_BACKEND_SECRETS") or backend_secret(data_dir)
    env.setdefault("SDQ_BACKEND_SECRETS", secret)
    if not captcha:
        env["SDQ_INSECURE_SKIP_CAPTCHA"] = "true"
    env.setdefault("SDQ_IMAGES_DIR", str((data_dir / "images").resolve()))
    env["SDQ_PORT"] = str(port)
    supervisor = Supervisor(report=lambda line: print(f"sdq up: {line}", flush=True))
    api = _spawn(["api", "--host", host, "--port", str(port)], env)
    supervisor.add("api", api, essential=True)
    if worker:
        supervisor.add("worker", _spawn(["worker"], _worker_env(env, port)), essential=True)
    redis_shown = engine.url + " (embedded, append-only file)" if engine else "SDQ_REDIS_URL"
    print(
        BANNER.format(
            port=port,
            host=host,
            reach=LOCAL_ONLY if is_loopback(host) else "",
            redis=redis_shown,
            data=data_dir.resolve(),
            secret=secret.split(",")[0],
            captcha="" if captcha else NO_CAPTCHA,
        ),
        flush=True,
    )
    supervisor.stop_on_signals()
    try:
        return supervisor.watch()
    finally:
        supervisor.stop_all()
        if engine is not None:
            engine.stop()


def _worker_env(env: dict[str, str], port: int) -> dict[str, str]:
    """The quick start's worker: test-pattern images (a second each, so a job is seen
    pending) stored in the folder the API serves at /images/, unless configured otherwise.
    The direct transport wakes at once; SDQ_TRANSPORT=http goes through this API."""
    worker_env = dict(env)
    worker_env.setdefault("SDQ_RENDERER", "test-pattern")
    worker_env.setdefault("SDQ_TEST_PATTERN_MS_PER_IMAGE", "1000")
    worker_env.setdefault("SDQ_STORAGE", "local")
    worker_env.setdefault("SDQ_API_URL", f"http://127.0.0.1:{port}")
    worker_env.setdefault("SDQ_BACKEND_SECRET", env["SDQ_BACKEND_SECRETS"].split(",")[0].strip())
    return worker_env


def _spawn(args: list[str], env: dict[str, str]) -> Process:
    return spawn([sys.executable, "-m", "sdq.cli", *args], env)
