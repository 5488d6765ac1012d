"""The manifests set only real settings, every required one, for each process."""

from __future__ import annotations

import pytest

from api.settings import ApiSettings
from gpu_worker.settings import WorkerSettings
from tests.deploy.k8s.support import (
    VARIANTS,
    Obj,
    container,
    containers_of,
    environment,
    of_kind,
    one,
    settings_from,
    settings_variables,
)


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
