"""SDQ_TRUSTED_PROXIES is the only source of a client's address, through a real uvicorn
and a real nginx. (uvicorn's own proxy headers, on by default for loopback peers, once
let a fresh X-Forwarded-For per request lift the open-jobs cap behind a same-host proxy.)"""

from __future__ import annotations

import itertools

import httpx
import pytest

from sdq.cluster import Cluster
from tests.sdq.cluster.conftest import ClusterFactory

pytestmark = pytest.mark.slow
spoofed = (f"198.51.100.{i}" for i in itertools.count(1))


def add(url: str) -> httpx.Response:
    query = "prompt=hello&number=1&resolution=576x576&captcha=good-spoof"
    return httpx.get(f"{url}/addJob?{query}", headers={"X-Forwarded-For": next(spoofed)})


def capped(start_cluster: ClusterFactory, **options: object) -> Cluster:
    env = {"SDQ_MAX_OPEN_JOBS_PER_CLIENT": "1", **options.pop("env", {})}  # type: ignore[dict-item]
    return start_cluster(replicas=1, workers=0, env=env, **options)


def test_a_spoofed_header_sent_to_the_load_balancer_is_replaced_by_the_real_peer(
    start_cluster: ClusterFactory,
) -> None:
    cluster = capped(start_cluster)  # replicas trust nginx (127.0.0.1) only
    assert add(cluster.url).status_code == 200
    refused = add(cluster.url)  # another X-Forwarded-For: the same client all the same
    assert (refused.status_code, refused.json()) == (429, "too many open jobs")


def test_a_spoofed_header_sent_straight_to_a_replica_trusting_no_proxy_is_ignored(
    start_cluster: ClusterFactory,
) -> None:
    cluster = capped(start_cluster, env={"SDQ_TRUSTED_PROXIES": ""})
    replica = cluster.replica_urls[0]  # a real uvicorn, reached from loopback
    assert add(replica).status_code == 200
    refused = add(replica)
    assert (refused.status_code, refused.json()) == (429, "too many open jobs")
