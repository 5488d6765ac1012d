"""Fixtures of the deploy/k8s tests: the rendered variants and the real app."""

from __future__ import annotations

import shutil
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import fakeredis
import httpx
import pytest

from api.app import create_app
from api.settings import ApiSettings
from broker.queue import Queue
from tests.deploy.k8s.support import (
    K8S,
    SECRET_FILES,
    VARIANTS,
    Obj,
    container,
    environment,
    render,
    settings_from,
)


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
