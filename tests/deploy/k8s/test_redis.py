"""Redis: persistence, no eviction, and the Sentinel overlay's start scripts."""

from __future__ import annotations

import re
import stat
import subprocess
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import pytest

from tests.deploy.k8s.support import (
    DOCS,
    ROOT,
    SENTINEL,
    VARIANTS,
    Obj,
    containers_of,
    load,
    one,
)


def flags(args: list[str]) -> dict[str, str]:
    return {args[i].removeprefix("--"): args[i + 1] for i in range(0, len(args), 2)}


def size_bytes(value: str) -> int:
    units = {"gb": 1 << 30, "mb": 1 << 20, "Gi": 1 << 30, "Mi": 1 << 20}
    match = re.fullmatch(r"(\d+)(gb|mb|Gi|Mi)", value)
    assert match, value
    return int(match.group(1)) * units[match.group(2)]


@pytest.mark.parametrize("variant", sorted(VARIANTS))
def test_redis_persists_every_write_and_never_evicts(
    variants: dict[str, list[Obj]], variant: str
) -> None:
    objects = variants[variant]
    redis = one(objects, "StatefulSet", "sdq-redis")
    (c,) = containers_of(redis)
    config = flags(c["args"])
    assert config["appendonly"] == "yes" and config["appendfsync"] == "always"
    assert config["maxmemory-policy"] == "noeviction"
    assert config["save"] == "", "the AOF only: no RDB snapshots besides it"
    assert size_bytes(config["maxmemory"]) < size_bytes(c["resources"]["limits"]["memory"])
    (template,) = redis["spec"]["volumeClaimTemplates"]
    (mount,) = [m for m in c["volumeMounts"] if m["name"] == template["metadata"]["name"]]
    assert mount["mountPath"] == config["dir"]
    service = one(objects, "Service", redis["spec"]["serviceName"])
    assert service["spec"]["clusterIP"] == "None", "headless: names for each pod"


def test_redis_url_names_the_redis_service(single: list[Obj]) -> None:
    url = urlsplit(one(single, "ConfigMap", "sdq-config")["data"]["SDQ_REDIS_URL"])
    (port,) = one(single, "Service", "sdq-redis")["spec"]["ports"]
    assert (url.scheme, url.hostname, url.port) == ("redis", "sdq-redis", port["port"])


# The start scripts of the Sentinel overlay, run by /bin/sh with stand-ins for
# hostname, timeout, redis-cli (answers SENTINEL_ANSWER) and redis-server (prints argv).
STUBS = {
    "hostname": 'echo "$FAKE_HOSTNAME"',
    "timeout": 'shift; exec "$@"',
    "sleep": "exit 0",
    "redis-server": 'echo "redis-server $*"',
    "redis-cli": 'case "$*" in *ping*) exit 0;; esac\n'
    '[ -n "${SENTINEL_ANSWER:-}" ] || exit 1\nprintf "%s\\n" "$SENTINEL_ANSWER"',
}


@pytest.fixture
def run_script(tmp_path: Path) -> Any:
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    for name, body in STUBS.items():
        path = bin_dir / name
        path.write_text(f"#!/bin/sh\n{body}\n", encoding="utf-8")
        path.chmod(path.stat().st_mode | stat.S_IEXEC)
    scripts = one(load(SENTINEL / "redis-scripts.yaml"), "ConfigMap", "sdq-redis-scripts")["data"]

    def run(script: str, hostname: str, answer: str | None, *args: str) -> str:
        text = scripts[script].replace("/data/", f"{tmp_path}/")
        env = {"PATH": f"{bin_dir}:/usr/bin:/bin", "FAKE_HOSTNAME": hostname}
        env |= {"SENTINEL_SERVICE": "sdq"} | ({"SENTINEL_ANSWER": answer} if answer else {})
        result = subprocess.run(
            ["/bin/sh", "-c", text, "start", *args],
            env=env,
            capture_output=True,
            text=True,
            check=True,
            timeout=30,
        )
        return result.stdout.splitlines()[-1]

    return run


def test_first_start_makes_redis_0_the_primary(run_script: Any) -> None:
    assert run_script("redis-start.sh", "sdq-redis-0", None, "--appendfsync", "always") == (
        "redis-server --appendfsync always --replica-announce-ip sdq-redis-0.sdq-redis"
    )
    assert run_script("redis-start.sh", "sdq-redis-1", None).endswith(
        "--replica-announce-ip sdq-redis-1.sdq-redis --replicaof sdq-redis-0.sdq-redis 6379"
    )


def test_a_restarted_node_follows_the_primary_the_sentinels_name(run_script: Any) -> None:
    after_failover = "sdq-redis-2.sdq-redis"
    line = run_script("redis-start.sh", "sdq-redis-0", after_failover)
    assert line.endswith(f"--replicaof {after_failover} 6379"), "never a second primary"
    line = run_script("redis-start.sh", "sdq-redis-2", after_failover)
    assert "--replicaof" not in line
    line = run_script("redis-start.sh", "sdq-redis-1", "ERR No such master with that name")
    assert line.endswith("--replicaof sdq-redis-0.sdq-redis 6379"), "an error is no answer"


def test_sentinel_monitors_the_primary_its_peers_name(run_script: Any, tmp_path: Path) -> None:
    for answer, primary in ((None, "sdq-redis-0.sdq-redis"), ("sdq-redis-1.sdq-redis", None)):
        line = run_script("sentinel-start.sh", "sdq-sentinel-1", answer)
        assert line == f"redis-server {tmp_path}/sentinel.conf --sentinel"
        conf = (tmp_path / "sentinel.conf").read_text(encoding="utf-8").splitlines()
        assert f"sentinel monitor sdq {primary or answer} 6379 2" in conf
        assert {"sentinel resolve-hostnames yes", "sentinel announce-hostnames yes"} <= set(conf)
        assert "sentinel announce-ip sdq-sentinel-1.sdq-sentinel" in conf


# --- the documentation --------------------------------------------------------------


def test_docs_take_the_operator_from_an_empty_namespace_to_the_demo_page() -> None:
    text = DOCS.read_text(encoding="utf-8")
    for needle in (
        "kubectl apply -k deploy/k8s",
        "kubectl apply -k deploy/k8s/overlays/sentinel",
        "externalTrafficPolicy: Local",
        "SDQ_TRUSTED_PROXIES",
        "TORCHINDUCTOR_CACHE_DIR",
        "appendfsync always",
        "cooldownPeriod",
        "stabilizationWindowSeconds",
        "terminationGracePeriodSeconds",
        "rediss://",
        "sdq_queue_waiting_images",
    ):
        assert needle in text, f"docs/kubernetes.md does not mention {needle}"
    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    assert "docs/kubernetes.md" in readme
