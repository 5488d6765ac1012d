"""What the deploy/k8s tests share: the manifests loaded and rendered by a small
kustomize, and lookups over the objects."""

from __future__ import annotations

import base64
import os
import re
from pathlib import Path
from typing import Any

import kubernetes_validate
import pytest
import yaml

from api.settings import ApiSettings
from broker.settings import BrokerSettings
from gpu_worker.settings import WorkerSettings

ROOT = Path(__file__).resolve().parents[3]
K8S = ROOT / "deploy" / "k8s"
BASE = K8S / "base"
SENTINEL = K8S / "overlays" / "sentinel"
DOCS = ROOT / "docs" / "kubernetes.md"
VARIANTS = {"single": Path("."), "sentinel": Path("overlays/sentinel")}
SCHEMAS = kubernetes_validate.latest_version()

# What docs/kubernetes.md has the operator write into base/secrets/ (dummy values
# here: they only have to be accepted by the settings).
SECRET_FILES = {
    "api.env": {
        "SDQ_BACKEND_SECRETS": "test-only-backend-secret",
        "SDQ_HCAPTCHA_SECRET": "test-only-hcaptcha-secret",
    },
    "worker.env": {
        "AWS_ACCESS_KEY_ID": "test-only-key-id",
        "AWS_SECRET_ACCESS_KEY": "test-only-secret-key",
    },
}
# ingress-nginx's own check of the annotation (internal/ingress/annotations/proxy).
NEXT_UPSTREAM = re.compile(
    r"^((error|timeout|invalid_header|http_500|http_502|http_503|http_504|http_403"
    r"|http_404|http_429|non_idempotent|off)\s?)+$"
)
ANNOTATION = "nginx.ingress.kubernetes.io/"
KEDA_FORMATS = {"json", "xml", "yaml", "prometheus"}

Obj = dict[str, Any]


# --- reading and rendering ------------------------------------------------------------


def load(path: Path) -> list[Obj]:
    return [doc for doc in yaml.safe_load_all(path.read_text(encoding="utf-8")) if doc]


def kustomization(folder: Path) -> Obj:
    (doc,) = load(folder / "kustomization.yaml")
    return doc


def is_manifest(path: Path) -> bool:
    docs = load(path)
    return bool(docs) and all("apiVersion" in doc and "kind" in doc for doc in docs)


# Strategic-merge keys of the lists these patches touch (kustomize knows them all).
MERGE_KEYS = {"containers": "name", "env": "name", "volumes": "name", "volumeMounts": "mountPath"}


def merge(base: Any, patch: Any, field: str = "") -> Any:
    """A strategic merge patch, as far as these files need one: maps merge, lists
    with a merge key merge by it, every other list is replaced."""
    if isinstance(base, dict) and isinstance(patch, dict):
        merged = dict(base)
        for key, value in patch.items():
            merged[key] = merge(base[key], value, key) if key in base else value
        return merged
    key = MERGE_KEYS.get(field)
    if key and isinstance(base, list) and isinstance(patch, list):
        old = {item[key]: item for item in base}
        new = [merge(old[item[key]], item) if item[key] in old else item for item in patch]
        patched = {item[key] for item in patch}
        return new + [item for item in base if item[key] not in patched]
    return patch


def env_file(path: Path) -> dict[str, str]:
    lines = path.read_text(encoding="utf-8").splitlines()
    pairs = [line.split("=", 1) for line in lines if line.strip() and not line.startswith("#")]
    return {key: value for key, value in pairs}


def render(folder: Path) -> list[Obj]:
    """`kubectl kustomize folder` for what these kustomizations use: resources,
    secretGenerator (envs; names without the content hash), patches, namespace, images."""
    k = kustomization(folder)
    objects: list[Obj] = []
    for entry in k.get("resources", []):
        path = (folder / entry).resolve()
        objects += render(path) if path.is_dir() else load(path)
    for generator in k.get("secretGenerator", []):
        data: dict[str, str] = {}
        for envs in generator["envs"]:
            data |= env_file(folder / envs)
        encoded = {key: base64.b64encode(value.encode()).decode() for key, value in data.items()}
        meta = {"name": generator["name"]}
        objects.append({"apiVersion": "v1", "kind": "Secret", "metadata": meta, "data": encoded})
        objects[-1]["type"] = "Opaque"
    for patch in k.get("patches", []):
        (doc,) = load(folder / patch["path"])
        (target,) = [o for o in objects if key_of(o) == key_of(doc)]
        objects[objects.index(target)] = merge(target, doc)
    for obj in objects:
        if "namespace" in k:
            obj["metadata"]["namespace"] = k["namespace"]
        for image in k.get("images", []):
            for container in containers_of(obj):
                if container["image"] == image["name"]:
                    container["image"] = f"{image['newName']}:{image['newTag']}"
    return objects


def key_of(obj: Obj) -> tuple[str, str]:
    return obj["kind"], obj["metadata"]["name"]


def one(objects: list[Obj], kind: str, name: str) -> Obj:
    (found,) = [o for o in objects if key_of(o) == (kind, name)]
    return found


def of_kind(objects: list[Obj], kind: str) -> list[Obj]:
    return [o for o in objects if o["kind"] == kind]


def pod_spec(obj: Obj) -> Obj:
    spec: Obj = obj["spec"]["template"]["spec"]
    return spec


def containers_of(obj: Obj) -> list[Obj]:
    if obj["kind"] not in {"Deployment", "StatefulSet"}:
        return []
    found: list[Obj] = pod_spec(obj)["containers"]
    return found


def container(objects: list[Obj], kind: str, name: str) -> Obj:
    (found,) = containers_of(one(objects, kind, name))
    return found


def secret_data(secret: Obj) -> dict[str, str]:
    return {key: base64.b64decode(value).decode() for key, value in secret["data"].items()}


def environment(objects: list[Obj], c: Obj) -> dict[str, str]:
    """The variables a container starts with: envFrom in order (later wins), then env."""
    env: dict[str, str] = {}
    for source in c.get("envFrom", []):
        if "configMapRef" in source:
            env |= one(objects, "ConfigMap", source["configMapRef"]["name"])["data"]
        else:
            env |= secret_data(one(objects, "Secret", source["secretRef"]["name"]))
    for var in c.get("env", []):
        if "value" in var:
            env[var["name"]] = var["value"]
        else:
            ref = var["valueFrom"]["configMapKeyRef"]
            env[var["name"]] = one(objects, "ConfigMap", ref["name"])["data"][ref["key"]]
    return env


def settings_variables() -> set[str]:
    fields = set(ApiSettings.model_fields) | set(WorkerSettings.model_fields)
    return {f"SDQ_{name.upper()}" for name in fields}


def settings_from(env: dict[str, str], cls: type[BrokerSettings], mp: pytest.MonkeyPatch) -> Any:
    """The settings object the process builds from exactly this environment."""
    for name in list(os.environ):
        if name.startswith("SDQ_"):
            mp.delenv(name)
    for name, value in env.items():
        mp.setenv(name, value)
    return cls()
