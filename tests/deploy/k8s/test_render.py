"""deploy/k8s renders, validates against the Kubernetes schemas and keeps no secret."""

from __future__ import annotations

import copy
import re
import shutil
import subprocess
from pathlib import Path
from typing import Any

import kubernetes_validate
import pytest
import yaml

from tests.deploy.k8s.support import (
    BASE,
    DOCS,
    K8S,
    ROOT,
    SCHEMAS,
    SECRET_FILES,
    SENTINEL,
    VARIANTS,
    Obj,
    is_manifest,
    key_of,
    kustomization,
    load,
    one,
)

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
