"""GPU workers: KEDA scales them on metrics the API exports; grace, GPU, caches."""

from __future__ import annotations

import copy
import re
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import httpx
import kubernetes_validate
from prometheus_client.parser import text_string_to_metric_families

from api.legacy.rules import MAX_NUMBER, RESOLUTIONS
from broker.settings import BrokerSettings
from broker.tokens import new_token
from tests.deploy.k8s.support import (
    KEDA_FORMATS,
    SCHEMAS,
    Obj,
    of_kind,
    one,
    pod_spec,
)


def scaled_object(objects: list[Obj]) -> Obj:
    (found,) = of_kind(objects, "ScaledObject")
    return found


def test_scaled_object_has_the_fields_keda_requires(single: list[Obj]) -> None:
    """KEDA's CRD is not in the schemas: its documented fields, checked by hand."""
    so = scaled_object(single)
    assert (so["apiVersion"], so["kind"]) == ("keda.sh/v1alpha1", "ScaledObject")
    spec = so["spec"]
    target = spec["scaleTargetRef"]
    worker = one(single, target.get("kind", "Deployment"), target["name"])
    assert worker["apiVersion"] == target["apiVersion"]
    assert worker["metadata"]["name"] == "sdq-worker"
    assert "replicas" not in worker["spec"], "KEDA owns the worker count"
    for field in ("pollingInterval", "cooldownPeriod", "minReplicaCount", "maxReplicaCount"):
        assert isinstance(spec[field], int) and spec[field] >= 0, field
    assert spec["minReplicaCount"] == 0 < spec["maxReplicaCount"]
    assert spec["triggers"]
    for trigger in spec["triggers"]:
        assert trigger["type"] == "metrics-api"
        meta = trigger["metadata"]
        assert all(isinstance(value, str) for value in meta.values()), "map[string]string"
        assert {"url", "valueLocation", "targetValue"} <= set(meta)
        assert meta.get("format", "json") in KEDA_FORMATS
        assert float(meta["targetValue"]) > 0 and float(meta.get("activationTargetValue", 0)) >= 0
    # The behavior goes to the HPA that KEDA creates: the HPA's schema judges it.
    behavior = spec["advanced"]["horizontalPodAutoscalerConfig"]["behavior"]
    hpa = copy.deepcopy(one(single, "HorizontalPodAutoscaler", "sdq-api"))
    hpa["spec"]["behavior"] = behavior
    kubernetes_validate.validate(hpa, SCHEMAS, strict=True)


def test_scaled_object_reads_the_api_service_in_this_namespace(single: list[Obj]) -> None:
    service = one(single, "Service", "sdq-api")
    (port,) = service["spec"]["ports"]
    for trigger in scaled_object(single)["spec"]["triggers"]:
        url = urlsplit(trigger["metadata"]["url"])
        host = f"{service['metadata']['name']}.{service['metadata']['namespace']}.svc"
        assert (url.scheme, url.hostname, url.path) == ("http", host, "/metrics")
        assert url.port == port["port"]
        assert "aggregateFromKubeServiceEndpoints" not in trigger["metadata"], (
            "every replica reports the whole queue: summing them would multiply it"
        )


def selector(location: str) -> tuple[str, dict[str, str]]:
    """A PromQL instant selector (what KEDA's prometheus format takes): name{l="v",...}."""
    match = re.fullmatch(r"([a-zA-Z_:][a-zA-Z0-9_:]*)(?:\{(.*)\})?", location)
    assert match, location
    labels = dict(re.findall(r'(\w+)="([^"]*)"', match.group(2) or ""))
    return match.group(1), labels


async def scrape(http: httpx.AsyncClient) -> list[tuple[str, dict[str, str], float]]:
    reply = await http.get("/metrics")
    assert reply.status_code == 200
    families = text_string_to_metric_families(reply.text)
    return [(s.name, dict(s.labels), s.value) for family in families for s in family.samples]


async def test_keda_triggers_read_metrics_the_api_exports(single: list[Obj], api_app: Any) -> None:
    """Also with an empty queue: KEDA scales to 0 on a 0, but errors on a missing metric."""
    http, queue = api_app
    triggers = scaled_object(single)["spec"]["triggers"]
    assert triggers[0]["metadata"]["valueLocation"] == "sdq_queue_waiting_images"
    for jobs in (0, 2):
        for _ in range(jobs):
            await queue.add_job(new_token(), "a cat", 3, 768, 576)
        samples = await scrape(http)
        for trigger in triggers:
            name, labels = selector(trigger["metadata"]["valueLocation"])
            found = [v for n, ls, v in samples if n == name and labels.items() <= ls.items()]
            assert len(found) == 1, f"/metrics has no single {trigger['metadata']['valueLocation']}"
        waiting = [v for n, _, v in samples if n == "sdq_queue_waiting_images"]
        assert waiting == [jobs * 3], "images of the jobs waiting in state new"


# --- workers ------------------------------------------------------------------------


def longest_job_lease_s() -> float:
    """The broker's own bound on a job (the legacy protocol's lease): the most images
    at the largest resolution."""
    s = BrokerSettings()
    megapixels = max(width * height for width, height in RESOLUTIONS.values()) / 1e6
    return (s.lease_base_ms + s.lease_per_megapixel_ms * MAX_NUMBER * megapixels) / 1000


def test_worker_grace_period_outlasts_the_longest_job(single: list[Obj]) -> None:
    worker = one(single, "Deployment", "sdq-worker")
    spec = pod_spec(worker)
    assert spec["terminationGracePeriodSeconds"] > longest_job_lease_s()
    (c,) = spec["containers"]
    assert "lifecycle" not in c, "a preStop hook would spend the grace period before SIGTERM"
    update = worker["spec"]["strategy"]["rollingUpdate"]
    assert (update["maxSurge"], update["maxUnavailable"]) == (0, 1), "one worker at a time"


def test_worker_gets_one_gpu_and_keeps_its_caches_on_the_model_volume(single: list[Obj]) -> None:
    spec = pod_spec(one(single, "Deployment", "sdq-worker"))
    (c,) = spec["containers"]
    assert c["resources"]["limits"]["nvidia.com/gpu"] == 1
    env = {var["name"]: var.get("value") for var in c["env"]}
    mounts = {m["name"]: m["mountPath"] for m in c["volumeMounts"]}
    volumes = {v["name"]: v for v in spec["volumes"]}
    (models,) = [name for name, path in mounts.items() if path == env["HF_HOME"]]
    claim = volumes[models]["persistentVolumeClaim"]["claimName"]
    assert one(single, "PersistentVolumeClaim", claim)["spec"]["accessModes"] == ["ReadWriteMany"]
    assert Path(env["TORCHINDUCTOR_CACHE_DIR"]).is_relative_to(env["HF_HOME"])
    assert (env["SDQ_TRANSPORT"], env["SDQ_RENDERER"], env["SDQ_STORAGE"]) == (
        "redis",
        "diffusers",
        "s3",
    )


# --- the load balancer --------------------------------------------------------------
