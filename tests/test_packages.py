"""The shape of the code base: every package says what it holds, and no module holds two ideas.

- Each package of the four layers declares `__all__`: sorted, every entry an
  attribute or a submodule, and every public submodule listed (the package's
  table of contents, kept honest here).
- No Python module of the project is over 400 lines.
(The import layers themselves are import-linter's contracts in pyproject.toml,
run by scripts/lint.)
"""

from __future__ import annotations

import importlib
import importlib.util
import pkgutil
from pathlib import Path
from types import ModuleType

import pytest

ROOT = Path(__file__).resolve().parent.parent
LAYERS = ("sdq", "api", "gpu_worker", "broker")
MAX_LINES = 400


def packages() -> list[str]:
    found = []
    for layer in LAYERS:
        found.append(layer)
        module = importlib.import_module(layer)
        found += [
            info.name
            for info in pkgutil.walk_packages(module.__path__, prefix=f"{layer}.")
            if info.ispkg
        ]
    return sorted(found)


def public_submodules(package: ModuleType) -> set[str]:
    return {
        info.name
        for info in pkgutil.iter_modules(package.__path__)
        if not info.name.startswith("_")
    }


@pytest.mark.parametrize("name", packages())
def test_every_package_declares_its_public_names(name: str) -> None:
    package = importlib.import_module(name)
    declared = getattr(package, "__all__", None)
    assert isinstance(declared, list), f"{name} has no __all__ list"
    assert declared == sorted(set(declared)), f"{name}.__all__ is not sorted and unique"
    for entry in declared:
        if not hasattr(package, entry):
            # a submodule, not imported by the package itself
            assert importlib.util.find_spec(f"{name}.{entry}") is not None, f"{name}.{entry}"
    missing = public_submodules(package) - set(declared)
    assert not missing, f"{name}.__all__ does not list its modules {sorted(missing)}"


def python_files() -> list[Path]:
    folders = [*LAYERS, "bench", "tests"]
    return sorted(path for folder in folders for path in (ROOT / folder).rglob("*.py"))


def test_no_module_is_over_400_lines() -> None:
    long = {
        str(path.relative_to(ROOT)): lines
        for path in python_files()
        if (lines := len(path.read_text(encoding="utf-8").splitlines())) > MAX_LINES
    }
    assert long == {}
