"""Images, commands, ports and probes are what the Dockerfiles and the app provide."""

from __future__ import annotations

import re
import tomllib
from typing import Any

import pytest
import yaml

from sdq.cli import _parser
from tests.deploy.k8s.support import (
    BASE,
    ROOT,
    Obj,
    container,
    kustomization,
    load,
    one,
    pod_spec,
)


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
