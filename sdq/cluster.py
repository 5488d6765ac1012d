"""`sdq cluster`: the production topology of compose.yaml as local processes.

A Redis engine with append-only persistence, several API replicas (one uvicorn
each, on their own ports), a real nginx in front of them with the configuration
of deploy/nginx.conf, and N workers. No Docker needed: a user can try the
cluster, and the fault tests and the load benchmark drive it through `Cluster`
(kill a replica, the Redis engine or a worker, and bring them back).
"""

from __future__ import annotations

import os
import shutil
import sys
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from types import TracebackType

import httpx

from sdq.embedded_redis import EmbeddedRedis
from sdq.nginx_conf import ClientLimits, main_config, site_config
from sdq.supervisor import Process, Supervisor, free_port, kill, spawn, stop
from sdq.up import backend_secret

BANNER = """
  Stable Diffusion job queue: local cluster is up.

    load balancer  {url}/   (nginx, {replicas} API replicas behind it)
    replicas       {replica_urls}
    Redis          {redis} (append-only file in {data}/redis)
    workers        {workers} ({transport} transport, {renderer} renderer)
    data folder    {data}   (logs in logs/, images in images/)
    backend secret {secret}
{captcha}
  Ctrl-C stops everything.
"""

LOOPBACK = ("127.0.0.0/8", "::1/128")
_NO_CAPTCHA = "\n  WARNING: captcha verification is OFF (no SDQ_HCAPTCHA_SECRET): demo use only.\n"


def find_nginx() -> str | None:
    """nginx on PATH, or where Debian installs it (/usr/sbin is not on every PATH)."""
    return shutil.which("nginx") or next(
        (path for path in ("/usr/sbin/nginx", "/usr/local/sbin/nginx") if Path(path).exists()),
        None,
    )


@dataclass
class Cluster:
    """The processes of one local cluster. `start()` returns once the load balancer
    serves; `stop()` ends every process it started, in reverse order."""

    data_dir: Path
    replicas: int = 3
    workers: int = 1
    port: int = field(default_factory=free_port)  # the load balancer's
    transport: str = "redis"  # how workers get jobs: straight from Redis, or via the LB
    env: Mapping[str, str] = field(default_factory=dict)  # extra SDQ_* for every child
    # What a worker runs (after `python`); the benchmark swaps in bench.sleep_worker.
    worker_args: Sequence[str] = ("-m", "sdq.cli", "worker")
    ready_timeout_s: float = 30.0
    # The simulated users of the benchmarks and the chaos command all come from loopback.
    client_limits: ClientLimits = field(default_factory=lambda: ClientLimits(exempt=LOOPBACK))

    redis: EmbeddedRedis | None = field(default=None, init=False)
    api: list[Process | None] = field(default_factory=list, init=False)
    api_ports: list[int] = field(default_factory=list, init=False)
    worker_procs: list[Process | None] = field(default_factory=list, init=False)
    nginx: Process | None = field(default=None, init=False)

    # -- addresses -------------------------------------------------------------

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def replica_urls(self) -> list[str]:
        return [f"http://127.0.0.1:{port}" for port in self.api_ports]

    @property
    def redis_url(self) -> str:
        assert self.redis is not None, "the cluster is not started"
        return self.redis.url

    @property
    def logs(self) -> Path:
        return self.data_dir / "logs"

    @property
    def secret(self) -> str:
        return self.child_env()["SDQ_BACKEND_SECRETS"].split(",")[0]

    # -- the whole ------------------------------------------------------------

    def start(self) -> Cluster:
        nginx = find_nginx()
        if nginx is None:
            raise RuntimeError("nginx is not installed (apt-get install -y nginx)")
        self.data_dir = self.data_dir.resolve()
        self.logs.mkdir(parents=True, exist_ok=True)
        try:
            self.redis = EmbeddedRedis(data_dir=self.data_dir / "redis").start()
            self.api_ports = [free_port() for _ in range(self.replicas)]
            self.api = [self._spawn_api(i) for i in range(self.replicas)]
            for i in range(self.replicas):
                self.wait_ready(self.replica_urls[i], self.api[i], f"api-{i}.log")
            self.nginx = self._spawn_nginx(nginx)
            self.wait_ready(self.url, self.nginx, "nginx.log")
            self.worker_procs = [self._spawn_worker(i) for i in range(self.workers)]
        except BaseException:
            self.stop()
            raise
        return self

    def stop(self) -> None:
        for proc in [*self.worker_procs, self.nginx, *self.api]:
            stop(proc)
        if self.redis is not None:
            self.redis.stop()

    def __enter__(self) -> Cluster:
        return self.start()

    def __exit__(
        self, kind: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.stop()

    # -- faults ---------------------------------------------------------------

    def kill_replica(self, i: int) -> None:
        """SIGKILL API replica i: what a crashed container looks like."""
        kill(self.api[i])

    def restart_replica(self, i: int) -> None:
        kill(self.api[i])
        self.api[i] = self._spawn_api(i)
        self.wait_ready(self.replica_urls[i], self.api[i], f"api-{i}.log")

    def kill_redis(self) -> None:
        """SIGKILL the Redis engine; its append-only file stays in the data folder."""
        assert self.redis is not None, "the cluster is not started"
        self.redis.kill()

    def restart_redis(self) -> None:
        """Starts the engine again on the same port, loading the append-only file."""
        assert self.redis is not None, "the cluster is not started"
        self.redis.kill()
        self.redis = EmbeddedRedis(data_dir=self.data_dir / "redis", port=self.redis.port)
        self.redis.start()

    def kill_worker(self, i: int) -> None:
        """SIGKILL worker i, mid-job or not."""
        kill(self.worker_procs[i])

    def restart_worker(self, i: int) -> None:
        """SIGKILLs worker i if it still runs and starts it again: same id, same log."""
        kill(self.worker_procs[i])
        self.worker_procs[i] = self._spawn_worker(i)

    def add_worker(self) -> int:
        """Starts one more worker; returns its index."""
        self.worker_procs.append(self._spawn_worker(len(self.worker_procs)))
        return len(self.worker_procs) - 1

    def worker_id(self, i: int) -> str:
        return f"cluster-worker-{i}"

    # -- processes --------------------------------------------------------------

    def child_env(self) -> dict[str, str]:
        env = dict(os.environ)
        env.update(self.env)
        if self.redis is not None:
            env["SDQ_REDIS_URL"] = self.redis.url
        if not env.get("SDQ_BACKEND_SECRETS"):
            self.data_dir.mkdir(parents=True, exist_ok=True)
            env["SDQ_BACKEND_SECRETS"] = backend_secret(self.data_dir)
        if not env.get("SDQ_HCAPTCHA_SECRET"):
            env["SDQ_INSECURE_SKIP_CAPTCHA"] = "true"
        env.setdefault("SDQ_IMAGES_DIR", str(self.data_dir / "images"))
        env.setdefault("SDQ_TRUSTED_PROXIES", "127.0.0.1/32")  # nginx, for X-Forwarded-For
        return env

    def _spawn_api(self, i: int) -> Process:
        port = str(self.api_ports[i])
        args = ["api", "--host", "127.0.0.1", "--port", port, "--workers", "1"]
        return self._spawn(["-m", "sdq.cli", *args], self.child_env(), f"api-{i}.log")

    def _spawn_worker(self, i: int) -> Process:
        env = self.child_env()
        env.update(
            SDQ_TRANSPORT=self.transport,
            SDQ_STORAGE="local",
            SDQ_WORKER_ID=self.worker_id(i),
            SDQ_API_URL=self.url,
        )
        env.setdefault("SDQ_RENDERER", "test-pattern")
        return self._spawn(self.worker_args, env, f"worker-{i}.log")

    def _spawn(self, args: Sequence[str], env: dict[str, str], log: str) -> Process:
        return spawn([sys.executable, *args], env, self.logs / log)

    def _spawn_nginx(self, binary: str) -> Process:
        folder = self.data_dir / "nginx"
        folder.mkdir(parents=True, exist_ok=True)
        servers = [f"127.0.0.1:{port}" for port in self.api_ports]
        site = site_config(
            servers,
            f"127.0.0.1:{self.port}",
            str(self.logs / "nginx-access.log"),
            str(self.logs / "nginx-error.log"),
            self.client_limits,
        )
        conf = folder / "nginx.conf"
        conf.write_text(main_config(site, folder), encoding="utf-8")
        command = [binary, "-p", str(folder), "-e", str(folder / "error.log")]
        return spawn([*command, "-c", str(conf), "-g", "daemon off;"], log=self.logs / "nginx.log")

    def wait_ready(self, url: str, proc: Process | None, log: str) -> None:
        """Until `url`/readyz answers 200; fails fast, quoting its log, when the process
        has exited."""
        deadline = time.monotonic() + self.ready_timeout_s
        with httpx.Client(timeout=1.0) as http:
            while time.monotonic() < deadline:
                if proc is not None and proc.poll() is not None:
                    lines = (self.logs / log).read_text(errors="replace").splitlines()[-5:]
                    tail = "\n    ".join(lines)
                    raise RuntimeError(
                        f"{url}: the process exited with {proc.returncode}; "
                        f"{self.logs / log} ends:\n    {tail}"
                    )
                try:
                    if http.get(f"{url}/readyz").status_code == 200:
                        return
                except httpx.TransportError:
                    pass
                time.sleep(0.1)
        raise RuntimeError(f"{url}/readyz did not answer 200 within {self.ready_timeout_s} s")

    def processes(self) -> dict[str, Process | None]:
        procs: dict[str, Process | None] = {"nginx": self.nginx}
        procs["redis"] = self.redis.process if self.redis is not None else None
        procs.update({f"api-{i}": proc for i, proc in enumerate(self.api)})
        procs.update({f"worker-{i}": proc for i, proc in enumerate(self.worker_procs)})
        return procs


def run_cluster(data_dir: Path, port: int, replicas: int, workers: int, transport: str) -> int:
    """The command: start, print where everything is, wait for Ctrl-C or SIGTERM."""
    cluster = Cluster(data_dir, replicas=replicas, workers=workers, port=port, transport=transport)
    supervisor = Supervisor(report=lambda line: print(f"sdq cluster: {line}", flush=True))
    supervisor.stop_on_signals()
    try:
        cluster.start()
    except RuntimeError as exc:
        print(f"sdq cluster: {exc}", file=sys.stderr)
        return 1
    try:
        env = cluster.child_env()
        print(
            BANNER.format(
                url=cluster.url,
                replicas=replicas,
                replica_urls=", ".join(cluster.replica_urls),
                redis=cluster.redis_url,
                data=cluster.data_dir,
                workers=workers,
                transport=transport,
                renderer=env.get("SDQ_RENDERER", "test-pattern"),
                secret=cluster.secret,
                captcha="" if env.get("SDQ_HCAPTCHA_SECRET") else _NO_CAPTCHA,
            ),
            flush=True,
        )
        for name, process in cluster.processes().items():
            supervisor.add(name, process, essential=name in ("nginx", "redis"))
        return supervisor.watch()
    finally:
        cluster.stop()
