"""NetworkPolicies, selectors, roll-outs and the restricted pod security settings."""

from __future__ import annotations

import ipaddress

import pytest

from tests.deploy.k8s.support import (
    VARIANTS,
    Obj,
    container,
    containers_of,
    of_kind,
    one,
    pod_spec,
)


def component(peer: Obj) -> str:
    assert set(peer) == {"podSelector"}, "a peer in this namespace"
    labels: dict[str, str] = peer["podSelector"]["matchLabels"]
    assert labels["app.kubernetes.io/name"] == "sdq"
    return labels["app.kubernetes.io/component"]


def admitted(objects: list[Obj], policy: str) -> tuple[set[str], set[int | str]]:
    (rule,) = one(objects, "NetworkPolicy", policy)["spec"]["ingress"]
    return {component(peer) for peer in rule["from"]}, {p["port"] for p in rule["ports"]}


def test_namespace_denies_ingress_by_default(single: list[Obj]) -> None:
    deny = one(single, "NetworkPolicy", "default-deny-ingress")["spec"]
    assert deny == {"podSelector": {}, "policyTypes": ["Ingress"]}


def test_only_the_api_and_the_workers_reach_redis(variants: dict[str, list[Obj]]) -> None:
    assert admitted(variants["single"], "sdq-redis") == ({"api", "worker"}, {6379})
    everyone = {"api", "worker", "redis", "sentinel"}
    assert admitted(variants["sentinel"], "sdq-redis") == (everyone, {6379})
    assert admitted(variants["sentinel"], "sdq-sentinel") == (everyone, {26379})


def test_only_the_ingress_controller_and_the_scrapers_reach_the_api(single: list[Obj]) -> None:
    rules = one(single, "NetworkPolicy", "sdq-api")["spec"]["ingress"]
    peers = [
        (
            peer["namespaceSelector"]["matchLabels"]["kubernetes.io/metadata.name"],
            peer["podSelector"]["matchLabels"]["app.kubernetes.io/name"],
        )
        for rule in rules
        for peer in rule["from"]
    ]
    assert peers[0] == ("ingress-nginx", "ingress-nginx")
    scrapers = {("keda", "keda-operator"), ("monitoring", "prometheus")}
    assert set(peers) == {("ingress-nginx", "ingress-nginx"), *scrapers}
    assert all(rule["ports"] == [{"port": "http", "protocol": "TCP"}] for rule in rules)


def test_api_trusts_x_forwarded_for_from_the_pod_network_only(single: list[Obj]) -> None:
    proxies = one(single, "ConfigMap", "sdq-config")["data"]["SDQ_TRUSTED_PROXIES"].split(",")
    for cidr in proxies:
        network = ipaddress.ip_network(cidr.strip())
        assert network.is_private and network.prefixlen >= 8, f"{cidr}: the pod network, no wider"


@pytest.mark.parametrize("variant", sorted(VARIANTS))
def test_every_selector_matches_pods_of_this_deployment(
    variants: dict[str, list[Obj]], variant: str
) -> None:
    objects = variants[variant]
    pods = [o["spec"]["template"]["metadata"]["labels"] for o in objects if containers_of(o)]
    selectors = [s["spec"]["selector"] for s in of_kind(objects, "Service")]
    selectors += [
        b["spec"]["selector"]["matchLabels"] for b in of_kind(objects, "PodDisruptionBudget")
    ]
    policies = of_kind(objects, "NetworkPolicy")
    selectors += [
        n["spec"]["podSelector"]["matchLabels"] for n in policies if n["spec"]["podSelector"]
    ]
    for o in objects:
        if containers_of(o):
            own = o["spec"]["template"]["metadata"]["labels"]
            assert o["spec"]["selector"]["matchLabels"].items() <= own.items()
    for wanted in selectors:
        assert any(wanted.items() <= labels.items() for labels in pods), wanted


# --- API rollout and scaling --------------------------------------------------------


def test_api_rolls_out_behind_readiness_and_scales_on_cpu(single: list[Obj]) -> None:
    api = one(single, "Deployment", "sdq-api")
    assert "replicas" not in api["spec"], "the HPA owns the count"
    update = api["spec"]["strategy"]["rollingUpdate"]
    assert (update["maxSurge"], update["maxUnavailable"]) == (1, 0)
    hpa = one(single, "HorizontalPodAutoscaler", "sdq-api")
    assert hpa["apiVersion"] == "autoscaling/v2"
    assert hpa["spec"]["scaleTargetRef"] == {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "name": "sdq-api",
    }
    assert hpa["spec"]["minReplicas"] == 3
    (metric,) = hpa["spec"]["metrics"]
    assert metric["resource"]["name"] == "cpu"
    assert container(single, "Deployment", "sdq-api")["resources"]["requests"]["cpu"]
    assert one(single, "PodDisruptionBudget", "sdq-api")["spec"]["maxUnavailable"] == 1


# --- hardening ----------------------------------------------------------------------


@pytest.mark.parametrize("variant", sorted(VARIANTS))
def test_every_pod_runs_restricted(variants: dict[str, list[Obj]], variant: str) -> None:
    """The Pod Security Standard `restricted`, and limits on every container."""
    for obj in variants[variant]:
        if not containers_of(obj):
            continue
        spec = pod_spec(obj)
        name = obj["metadata"]["name"]
        assert spec["automountServiceAccountToken"] is False, name
        security = spec["securityContext"]
        assert security["runAsNonRoot"] is True and security["runAsUser"] > 0, name
        assert security["seccompProfile"] == {"type": "RuntimeDefault"}, name
        assert not {"hostNetwork", "hostPID", "hostIPC"} & set(spec), name
        assert all("hostPath" not in volume for volume in spec.get("volumes", [])), name
        for c in spec["containers"]:
            assert c["securityContext"] == {
                "allowPrivilegeEscalation": False,
                "readOnlyRootFilesystem": True,
                "capabilities": {"drop": ["ALL"]},
            }, name
            assert c["resources"]["requests"] and c["resources"]["limits"]["memory"], name


def test_api_writes_only_to_an_empty_dir_at_tmp(single: list[Obj]) -> None:
    spec = pod_spec(one(single, "Deployment", "sdq-api"))
    (c,) = spec["containers"]
    (mount,) = c["volumeMounts"]
    (volume,) = spec["volumes"]
    assert mount["mountPath"] == "/tmp" and "emptyDir" in volume


# --- Redis --------------------------------------------------------------------------
