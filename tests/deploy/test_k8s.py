"""deploy/k8s (a kustomization over plain manifests), checked against the code
without a cluster: every object against the Kubernetes OpenAPI schemas (offline,
kubernetes-validate), KEDA's ScaledObject against its documented fields, and
whatever can drift from the code (settings, commands, images, routes, metrics, the
load balancer's retry rules) against the code itself.

The variants are rendered here by a small kustomize (`render`: just what these
files use), so CI checks the Sentinel overlay without kubectl; where kubectl is
installed, its own `kubectl kustomize` must give the same objects."""

from __future__ import annotations

import base64
import copy
import ipaddress
import os
import re
import shutil
import stat
import subprocess
import tomllib
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import fakeredis
import httpx
import kubernetes_validate
import pytest
import uvicorn
import yaml
from prometheus_client.parser import text_string_to_metric_families

from api.app import create_app
from api.legacy.rules import MAX_NUMBER, RESOLUTIONS
from api.settings import ApiSettings
from broker.queue import Queue
from broker.settings import BrokerSettings
from broker.tokens import new_token
from gpu_worker.settings import WorkerSettings
from sdq.cli import _parser
from sdq.nginx_conf import NOT_RETRIED, NOT_RETRIED_PREFIXES, compose_site

ROOT = Path(__file__).resolve().parents[2]
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


@pytest.fixture(scope="module")
def tree(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A copy of deploy/k8s with the operator's secret files written in."""
    copied = tmp_path_factory.mktemp("k8s") / "k8s"
    shutil.copytree(K8S, copied)
    for name, values in SECRET_FILES.items():
        lines = "".join(f"{key}={value}\n" for key, value in values.items())
        (copied / "base" / "secrets" / name).write_text(lines, encoding="utf-8")
    return copied


@pytest.fixture(scope="module")
def variants(tree: Path) -> dict[str, list[Obj]]:
    return {name: render(tree / folder) for name, folder in VARIANTS.items()}


@pytest.fixture(scope="module")
def single(variants: dict[str, list[Obj]]) -> list[Obj]:
    return variants["single"]


@pytest.fixture(scope="module")
def sentinel(variants: dict[str, list[Obj]]) -> list[Obj]:
    return variants["sentinel"]


def settings_from(env: dict[str, str], cls: type[BrokerSettings], mp: pytest.MonkeyPatch) -> Any:
    """The settings object the process builds from exactly this environment."""
    for name in list(os.environ):
        if name.startswith("SDQ_"):
            mp.delenv(name)
    for name, value in env.items():
        mp.setenv(name, value)
    return cls()


# --- the files and the kustomizations -------------------------------------------------


def test_kustomizations_list_every_manifest_file_in_their_folder() -> None:
    assert kustomization(K8S)["resources"] == ["base"]
    for folder in (BASE, SENTINEL):
        k = kustomization(folder)
        listed = {entry for entry in k["resources"] if not entry.startswith("..")}
        listed |= {patch["path"] for patch in k.get("patches", [])}
        files = {p.name for p in folder.glob("*.yaml") if p.name != "kustomization.yaml"}
        assert {name for name in files if is_manifest(folder / name)} == files
        assert listed == files, f"{folder.relative_to(ROOT)}: listed {listed}, on disk {files}"
    assert kustomization(SENTINEL)["resources"][0] == "../../base"


def test_every_manifest_file_is_valid_against_the_kubernetes_schemas() -> None:
    patches = {SENTINEL / patch["path"] for patch in kustomization(SENTINEL)["patches"]}
    for path in sorted({*BASE.glob("*.yaml"), *SENTINEL.glob("*.yaml")} - patches):
        for doc in load(path):
            if doc["kind"] in {"Kustomization", "ScaledObject"}:
                continue  # not Kubernetes objects; the ScaledObject is checked below
            kubernetes_validate.validate(doc, SCHEMAS, strict=True)


@pytest.mark.parametrize("variant", sorted(VARIANTS))
def test_rendered_variant_is_valid_against_the_kubernetes_schemas(
    variants: dict[str, list[Obj]], variant: str
) -> None:
    objects = variants[variant]
    assert len({key_of(o) for o in objects}) == len(objects), "two objects share a name"
    for obj in objects:
        if obj["kind"] != "ScaledObject":
            kubernetes_validate.validate(obj, SCHEMAS, strict=True)
        assert obj["metadata"].get("namespace") == kustomization(BASE)["namespace"], key_of(obj)


def normalized(objects: list[Obj]) -> list[Obj]:
    """Generated names without their hash, and merged lists in one order."""
    generators = {g["name"] for g in kustomization(BASE)["secretGenerator"]}
    names = {
        o["metadata"]["name"]: o["metadata"]["name"].rsplit("-", 1)[0]
        for o in objects
        if re.fullmatch(rf"({'|'.join(generators)})-[a-z0-9]{{10}}", o["metadata"]["name"])
    }

    def walk(node: Any) -> Any:
        if isinstance(node, dict):
            return {key: walk(value) for key, value in node.items()}
        if isinstance(node, list):
            items = [walk(item) for item in node]
            keys = {"name", "mountPath"} & set.intersection(
                *(set(i) if isinstance(i, dict) else set() for i in items or [{}])
            )
            return sorted(items, key=lambda i: str(i[min(keys)])) if keys else items
        return names.get(node, node) if isinstance(node, str) else node

    return sorted((walk(o) for o in objects), key=key_of)


@pytest.mark.parametrize("variant", sorted(VARIANTS))
def test_render_here_is_what_kubectl_kustomize_builds(
    tree: Path, variants: dict[str, list[Obj]], variant: str
) -> None:
    kubectl = shutil.which("kubectl")
    if kubectl is None:
        pytest.skip("kubectl is not installed: the Python render stands alone")
    built = subprocess.run(
        [kubectl, "kustomize", str(tree / VARIANTS[variant])],
        capture_output=True,
        text=True,
        check=True,
        timeout=120,
    )
    theirs = [doc for doc in yaml.safe_load_all(built.stdout) if doc]
    assert normalized(theirs) == normalized(copy.deepcopy(variants[variant]))


def test_kustomize_refuses_to_build_until_the_secret_files_exist(tmp_path: Path) -> None:
    kubectl = shutil.which("kubectl")
    if kubectl is None:
        pytest.skip("kubectl is not installed")
    pristine = tmp_path / "k8s"
    shutil.copytree(K8S, pristine, ignore=shutil.ignore_patterns("*.env"))
    built = subprocess.run(
        [kubectl, "kustomize", str(pristine)], capture_output=True, text=True, timeout=120
    )
    assert built.returncode != 0
    assert "secrets/api.env" in built.stderr


def test_no_secret_is_committed_and_the_operators_files_are_ignored() -> None:
    committed = {p.name for p in (BASE / "secrets").iterdir()}
    assert committed <= {".gitignore", *SECRET_FILES}
    for name in SECRET_FILES:
        path = f"deploy/k8s/base/secrets/{name}"
        ignored = subprocess.run(["git", "check-ignore", "-q", path], cwd=ROOT, check=False)
        assert ignored.returncode == 0, f"{path} is not ignored by git"
    generated = {g["name"]: g["envs"] for g in kustomization(BASE)["secretGenerator"]}
    assert sorted(generated.values()) == sorted([f"secrets/{name}"] for name in SECRET_FILES)
    config = one(load(BASE / "config.yaml"), "ConfigMap", "sdq-config")["data"]
    secret_names = {key for values in SECRET_FILES.values() for key in values}
    assert not secret_names & set(config), "a secret in the ConfigMap"


def test_docs_tell_the_operator_every_secret_key() -> None:
    text = DOCS.read_text(encoding="utf-8")
    for name, values in SECRET_FILES.items():
        assert name in text
        for key in values:
            assert f"{key}=" in text, f"docs/kubernetes.md does not say how to set {key}"


# --- settings, images, commands, probes ---------------------------------------------


@pytest.mark.parametrize("variant", sorted(VARIANTS))
def test_manifests_set_only_real_settings(variants: dict[str, list[Obj]], variant: str) -> None:
    objects = variants[variant]
    names = {var["name"] for o in objects for c in containers_of(o) for var in c.get("env", [])}
    names |= {key for cm in of_kind(objects, "ConfigMap") for key in cm["data"]}
    names |= {key for secret in of_kind(objects, "Secret") for key in secret["data"]}
    unknown = {name for name in names if name.startswith("SDQ_")} - settings_variables()
    assert not unknown, f"not settings fields: {sorted(unknown)}"


@pytest.mark.parametrize("variant", sorted(VARIANTS))
def test_api_starts_with_the_settings_the_manifests_give_it(
    variants: dict[str, list[Obj]], variant: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    objects = variants[variant]
    api: ApiSettings = settings_from(
        environment(objects, container(objects, "Deployment", "sdq-api")), ApiSettings, monkeypatch
    )
    assert api.all_backend_secrets() == ["test-only-backend-secret"]
    assert api.hcaptcha_secret is not None and not api.insecure_skip_captcha
    assert api.trusted_proxies, "SDQ_TRUSTED_PROXIES: the ingress controller's network"
    assert api.image_base_url, "the demo page and the v2 API need the images' public base"
    assert api.workers == 1, "scale with pods (more uvicorn workers: PROMETHEUS_MULTIPROC_DIR)"


@pytest.mark.parametrize("variant", sorted(VARIANTS))
def test_workers_start_with_the_settings_the_manifests_give_them(
    variants: dict[str, list[Obj]], variant: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    objects = variants[variant]
    env = environment(objects, container(objects, "Deployment", "sdq-worker"))
    worker: WorkerSettings = settings_from(env, WorkerSettings, monkeypatch)
    assert (worker.transport, worker.renderer, worker.storage) == ("redis", "diffusers", "s3")
    assert worker.s3_bucket
    assert {"AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY"} <= set(env), "boto3's credentials"
    assert "SDQ_BACKEND_SECRETS" not in env and "SDQ_HCAPTCHA_SECRET" not in env
    api_env = environment(objects, container(objects, "Deployment", "sdq-api"))
    api: ApiSettings = settings_from(api_env, ApiSettings, monkeypatch)
    for field in ("redis_url", "redis_sentinels", "redis_sentinel_service", "key_prefix"):
        assert getattr(worker, field) == getattr(api, field), f"API and workers differ: {field}"


def test_sentinel_variant_points_every_process_at_the_sentinels(
    sentinel: list[Obj], monkeypatch: pytest.MonkeyPatch
) -> None:
    env = environment(sentinel, container(sentinel, "Deployment", "sdq-api"))
    api: ApiSettings = settings_from(env, ApiSettings, monkeypatch)
    sentinels = one(sentinel, "StatefulSet", "sdq-sentinel")
    service = one(sentinel, "Service", "sdq-sentinel")
    assert sentinels["spec"]["serviceName"] == service["metadata"]["name"]
    (port,) = service["spec"]["ports"]
    pods = {f"sdq-sentinel-{i}.sdq-sentinel:{port['port']}" for i in range(3)}
    assert sentinels["spec"]["replicas"] == 3 and set(api.redis_sentinels) == pods
    for kind, name in (("StatefulSet", "sdq-sentinel"), ("StatefulSet", "sdq-redis")):
        c = container(sentinel, kind, name)
        assert environment(sentinel, c)["SENTINEL_SERVICE"] == api.redis_sentinel_service


def dockerfile_user(name: str) -> int:
    match = re.search(r"useradd .*--uid (\d+)", (ROOT / name).read_text(encoding="utf-8"))
    assert match
    return int(match.group(1))


def test_images_and_commands_are_what_the_dockerfiles_build() -> None:
    project = tomllib.loads((ROOT / "pyproject.toml").read_text(encoding="utf-8"))["project"]
    objects = render_unpatched()
    compose = yaml.safe_load((ROOT / "compose.yaml").read_text(encoding="utf-8"))["services"]
    for name, dockerfile in (("api", "Dockerfile.api"), ("worker", "Dockerfile.worker")):
        c = container(objects, "Deployment", f"sdq-{name}")
        assert c["image"] == compose[name]["image"] == f"sdq-{name}"
        assert f"-t sdq-{name}" in (ROOT / dockerfile).read_text(encoding="utf-8")
        assert c["command"] == compose[name]["command"]
        program, *args = c["command"]
        assert program in project["scripts"]
        assert _parser().parse_args(args).command == name  # exits on unknown arguments
        assert pod_spec(one(objects, "Deployment", f"sdq-{name}"))["securityContext"][
            "runAsUser"
        ] == dockerfile_user(dockerfile)
    images = {image["name"] for image in kustomization(BASE)["images"]}
    assert images == {"sdq-api", "sdq-worker"}


def render_unpatched() -> list[Obj]:
    """The base's own files, before kustomize sets registries and namespace."""
    return [doc for entry in kustomization(BASE)["resources"] for doc in load(BASE / entry)]


@pytest.mark.parametrize("dockerfile", ["Dockerfile.api", "Dockerfile.worker"])
def test_images_contain_the_package_of_the_sdq_command(dockerfile: str) -> None:
    """`sdq` is `sdq.cli:main`: an image without the sdq/ folder has a command that fails."""
    project = tomllib.loads((ROOT / "pyproject.toml").read_text(encoding="utf-8"))["project"]
    package = project["scripts"]["sdq"].split(".", 1)[0]
    copies = re.findall(r"^COPY (\S+) ", (ROOT / dockerfile).read_text(encoding="utf-8"), re.M)
    assert package in copies, f"{dockerfile} does not COPY {package}/ (the `sdq` command)"


def test_api_port_is_the_one_the_command_listens_on() -> None:
    objects = render_unpatched()
    c = container(objects, "Deployment", "sdq-api")
    args = _parser().parse_args(c["command"][1:])
    (port,) = c["ports"]
    assert port == {"name": "http", "containerPort": args.port}
    (service_port,) = one(objects, "Service", "sdq-api")["spec"]["ports"]
    assert service_port["targetPort"] == port["name"]


@pytest.fixture
async def api_app(single: list[Obj], monkeypatch: pytest.MonkeyPatch) -> AsyncIterator[Any]:
    """The real app with the manifests' settings, on fakeredis."""
    env = environment(single, container(single, "Deployment", "sdq-api"))
    settings: ApiSettings = settings_from(env, ApiSettings, monkeypatch)
    redis = fakeredis.FakeAsyncRedis(decode_responses=True)
    app = create_app(settings, redis=redis)
    async with app.router.lifespan_context(app):
        transport = httpx.ASGITransport(app=app, client=("10.244.1.7", 50000))
        async with httpx.AsyncClient(transport=transport, base_url="http://sdq-api:9090") as http:
            yield http, Queue(redis, settings)
    await redis.aclose()


async def test_probes_hit_real_routes_of_the_app(single: list[Obj], api_app: Any) -> None:
    http, _ = api_app
    c = container(single, "Deployment", "sdq-api")
    paths = {c["livenessProbe"]["httpGet"]["path"], c["readinessProbe"]["httpGet"]["path"]}
    assert paths == {"/healthz", "/readyz"}
    for probe in ("livenessProbe", "readinessProbe"):
        get = c[probe]["httpGet"]
        assert get["port"] == "http"
        assert (await http.get(get["path"])).status_code == 200, get["path"]


# --- KEDA ---------------------------------------------------------------------------


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


def nginx_directive(name: str) -> str:
    match = re.search(rf"^\s*{name} ([^;]+);", compose_site(), re.MULTILINE)
    assert match, name
    return match.group(1)


def seconds(value: str) -> str:
    return value.removesuffix("s")


def ingress(objects: list[Obj], name: str) -> tuple[dict[str, str], list[Obj]]:
    obj = one(objects, "Ingress", name)
    annotations = {k.removeprefix(ANNOTATION): v for k, v in obj["metadata"]["annotations"].items()}
    assert obj["spec"]["ingressClassName"] == "nginx"
    (rule,) = obj["spec"]["rules"]
    paths: list[Obj] = rule["http"]["paths"]
    return annotations, paths


def test_ingress_never_retries_what_nginx_conf_never_retries(single: list[Obj]) -> None:
    annotations, paths = ingress(single, "sdq-not-retried")
    exact = {p["path"] for p in paths if p["pathType"] == "Exact"}
    prefix = {p["path"] for p in paths if p["pathType"] == "Prefix"}
    assert (exact, prefix) == (set(NOT_RETRIED), set(NOT_RETRIED_PREFIXES))
    assert annotations["proxy-next-upstream"] == "off"
    assert "retry-non-idempotent" not in annotations


def test_ingress_retries_reads_as_nginx_conf_does(single: list[Obj]) -> None:
    annotations, paths = ingress(single, "sdq-reads")
    assert [(p["path"], p["pathType"]) for p in paths] == [("/", "Prefix")]
    assert annotations["proxy-next-upstream"] == nginx_directive("proxy_next_upstream")
    assert annotations["proxy-next-upstream-tries"] == nginx_directive("proxy_next_upstream_tries")
    timeout = seconds(nginx_directive("proxy_next_upstream_timeout"))
    assert annotations["proxy-next-upstream-timeout"] == timeout


@pytest.mark.parametrize("name", ["sdq-reads", "sdq-not-retried"])
def test_ingress_limits_are_nginx_conf_s(single: list[Obj], name: str) -> None:
    annotations, paths = ingress(single, name)
    assert NEXT_UPSTREAM.match(annotations["proxy-next-upstream"])
    assert all(isinstance(value, str) for value in annotations.values())
    assert annotations["proxy-body-size"] == nginx_directive("client_max_body_size")
    assert annotations["client-body-buffer-size"] == nginx_directive("client_body_buffer_size")
    assert annotations["proxy-connect-timeout"] == seconds(nginx_directive("proxy_connect_timeout"))
    assert annotations["proxy-read-timeout"] == seconds(nginx_directive("proxy_read_timeout"))
    assert annotations["proxy-max-temp-file-size"] == nginx_directive("proxy_max_temp_file_size")
    assert int(annotations["limit-connections"]) > 0
    port = one(single, "Service", "sdq-api")["spec"]["ports"][0]["name"]
    for path in paths:
        assert path["backend"]["service"] == {"name": "sdq-api", "port": {"name": port}}


def test_ingress_controller_values_carry_nginx_conf_s_server_settings() -> None:
    config = yaml.safe_load((K8S / "ingress-nginx" / "values.yaml").read_text(encoding="utf-8"))
    controller = config["controller"]
    assert controller["service"]["externalTrafficPolicy"] == "Local"
    settings = controller["config"]
    assert all(isinstance(value, str) for value in settings.values()), "ConfigMap values"
    assert settings["use-forwarded-headers"] == settings["compute-full-forwarded-for"] == "false"
    assert settings["large-client-header-buffers"] == nginx_directive("large_client_header_buffers")
    keepalive = uvicorn.Config("api.app:create_app").timeout_keep_alive
    assert int(settings["upstream-keepalive-timeout"]) < keepalive
    log_format = settings["log-format-upstream"]
    assert not re.search(r"\$(request|args|request_uri|query_string)\b", log_format)
    assert settings["error-log-level"] == "crit", "error lines quote the query string"


# --- network policies and client addresses ------------------------------------------


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
