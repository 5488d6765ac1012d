"""A local cluster per test (api/cluster.py: Redis with AOF, API replicas, nginx,
workers), with short leases and back-offs so faults resolve in seconds."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from sdq.cluster import Cluster, find_nginx
from sdq.doubles.fake_hcaptcha import FakeHCaptcha
from tests.conftest import HCAPTCHA_SECRET

FAST = {
    "SDQ_WORKER_LEASE_MS": "2000",  # a dead worker's job is free again after 2 s
    "SDQ_SWEEP_INTERVAL_S": "0.5",
    "SDQ_IDLE_POLL_S": "0.5",
    "SDQ_RETRY_BASE_S": "0.1",
    "SDQ_RETRY_CAP_S": "0.5",  # workers come back within 0.5 s of Redis
    "SDQ_ACCESS_LOG": "false",
}

ClusterFactory = Callable[..., Cluster]


@pytest.fixture
def start_cluster(tmp_path: Path, fake_hcaptcha: FakeHCaptcha) -> Iterator[ClusterFactory]:
    """Starts a cluster (skips when nginx is missing); stops it after the test."""
    if find_nginx() is None:
        pytest.skip("nginx is not installed (scripts/test installs it: apt-get install nginx)")
    started: list[Cluster] = []

    def start(**options: object) -> Cluster:
        extra = options.pop("env", {})
        assert isinstance(extra, dict)
        env = {
            **FAST,
            "SDQ_HCAPTCHA_SECRET": HCAPTCHA_SECRET,
            "SDQ_HCAPTCHA_VERIFY_URL": fake_hcaptcha.url,
            **extra,
        }
        cluster = Cluster(tmp_path / f"cluster-{len(started)}", env=env, **options)  # type: ignore[arg-type]
        started.append(cluster)
        return cluster.start()

    yield start
    for cluster in started:
        cluster.stop()
