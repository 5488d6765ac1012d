"""Real Redis-compatible servers for the HA tests: TLS, passwords, replicas, sentinels,
and a Redis Cluster for the broker suite.

Each server is a process on loopback on a free port, started from the same binary the
app's embedded default uses (broker/embedded.py), killed by the test that started it.
"""

from __future__ import annotations

import datetime
import ipaddress
import shutil
import subprocess
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import redis
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from sdq.embedded_redis import find_server_binary
from sdq.supervisor import free_port


@dataclass
class Server:
    args: list[str]
    port: int = field(default_factory=free_port)
    process: subprocess.Popen[bytes] | None = None
    log: Path | None = None

    def start(self) -> Server:
        out = self.log.open("wb") if self.log else None
        try:
            self.process = subprocess.Popen(
                [find_server_binary(), *self.args],
                stdout=out or subprocess.DEVNULL,
                stderr=subprocess.STDOUT,
            )
        finally:
            if out is not None:
                out.close()  # the child has its own copy
        return self

    def kill(self) -> None:
        """SIGKILL: what a crash looks like."""
        if self.process is not None and self.process.poll() is None:
            self.process.kill()
            self.process.wait()

    @property
    def exited(self) -> bool:
        return self.process is not None and self.process.poll() is not None


def plain(port: int, *extra: str) -> list[str]:
    return ["--port", str(port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no", *extra]


def wait_until(condition: Callable[[], bool], timeout_s: float, what: str) -> None:
    """Polls `condition` (errors count as not yet) until it holds or the time is up."""
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        try:
            if condition():
                return
        except (redis.RedisError, OSError):
            pass
        time.sleep(0.1)
    raise AssertionError(f"not within {timeout_s} s: {what}")


def client(port: int, password: str | None = None) -> redis.Redis:
    return redis.Redis(port=port, password=password, socket_timeout=1, decode_responses=True)


@dataclass(frozen=True)
class Certificates:
    ca: Path
    cert: Path
    key: Path


def make_certificates(folder: Path) -> Certificates:
    """A throw-away CA and a server certificate for 127.0.0.1 signed by it."""
    now = datetime.datetime.now(datetime.UTC)

    def build(
        subject: str,
        issuer: x509.Name | None,
        key: ec.EllipticCurvePrivateKey,
        signer: ec.EllipticCurvePrivateKey,
        ca: bool,
    ) -> x509.Certificate:
        name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, subject)])
        builder = (
            x509.CertificateBuilder()
            .subject_name(name)
            .issuer_name(issuer or name)
            .public_key(key.public_key())
            .serial_number(x509.random_serial_number())
            .not_valid_before(now - datetime.timedelta(minutes=5))
            .not_valid_after(now + datetime.timedelta(days=1))
            .add_extension(x509.BasicConstraints(ca=ca, path_length=None), critical=True)
        )
        if not ca:
            loopback = x509.IPAddress(ipaddress.ip_address("127.0.0.1"))
            san = x509.SubjectAlternativeName([loopback, x509.DNSName("localhost")])
            builder = builder.add_extension(san, critical=False)
        return builder.sign(signer, hashes.SHA256())

    ca_key = ec.generate_private_key(ec.SECP256R1())
    ca_cert = build("sdq test CA", None, ca_key, ca_key, ca=True)
    key = ec.generate_private_key(ec.SECP256R1())
    cert = build("127.0.0.1", ca_cert.subject, key, ca_key, ca=False)
    paths = Certificates(folder / "ca.pem", folder / "server.pem", folder / "server.key")
    paths.ca.write_bytes(ca_cert.public_bytes(serialization.Encoding.PEM))
    paths.cert.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    paths.key.write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.TraditionalOpenSSL,
            serialization.NoEncryption(),
        )
    )
    return paths


@dataclass
class ClusterServers:
    """A Redis Cluster of `primaries` primaries (no replicas) on loopback, one process
    and one folder (nodes.conf) each; the hash slots are spread over them by
    `redis-cli --cluster create`."""

    folder: Path
    primaries: int = 3
    servers: list[Server] = field(default_factory=list)

    @property
    def ports(self) -> list[int]:
        return [server.port for server in self.servers]

    @property
    def url(self) -> str:
        """One startup node; the client finds the others (SDQ_REDIS_URL's form)."""
        return f"redis://127.0.0.1:{self.ports[0]}/0"

    def start(self, timeout_s: float = 30.0) -> ClusterServers:
        cli = shutil.which("redis-cli") or shutil.which("valkey-cli")
        if cli is None:
            raise RuntimeError("no redis-cli (or valkey-cli) on PATH to create the cluster")
        for _ in range(self.primaries):
            server = Server([])
            home = (self.folder / str(server.port)).absolute()  # relative: under --dir
            home.mkdir(parents=True)
            # the bus port defaults to port + 10000, which a free port may not have
            server.args = plain(
                server.port,
                "--cluster-enabled", "yes",
                "--cluster-port", str(free_port()),
                "--cluster-config-file", str(home / "nodes.conf"),
                "--dir", str(home),
            )  # fmt: skip
            server.log = home / "server.log"
            self.servers.append(server.start())
        nodes = [client(port) for port in self.ports]
        try:
            for node in nodes:
                wait_until(node.ping, timeout_s, "a cluster node answers")
            nodes_arg = [f"127.0.0.1:{port}" for port in self.ports]
            subprocess.run(
                [
                    cli,
                    "--cluster",
                    "create",
                    *nodes_arg,
                    "--cluster-replicas",
                    "0",
                    "--cluster-yes",
                ],
                check=True,
                capture_output=True,
                timeout=timeout_s,
            )
            for node in nodes:
                wait_until(
                    lambda node=node: node.cluster("info")["cluster_state"] == "ok",
                    timeout_s,
                    "every node sees every slot served",
                )
        finally:
            for node in nodes:
                node.close()
        return self

    def stop(self) -> None:
        for server in self.servers:
            server.kill()
