"""docs/layout.md names every route, Lua script and command, so a newcomer finds the
code behind any of them in one hop."""

from __future__ import annotations

import argparse
from pathlib import Path

from pydantic import SecretStr

from api.app import create_app
from api.settings import ApiSettings
from broker.lua import script_names
from sdq.cli import _parser

LAYOUT = (Path(__file__).resolve().parent.parent / "docs" / "layout.md").read_text("utf-8")


def test_layout_names_every_route_of_the_openapi_schema() -> None:
    settings = ApiSettings(
        backend_secrets=[SecretStr("s" * 32)], insecure_skip_captcha=True, images_dir="/tmp"
    )
    paths = create_app(settings).openapi()["paths"]
    assert [path for path in paths if f"`{path}`" not in LAYOUT] == []


def test_layout_names_every_lua_script() -> None:
    assert [name for name in script_names() if f"`{name}`" not in LAYOUT] == []


def test_layout_names_every_sdq_command() -> None:
    (commands,) = (
        action for action in _parser()._actions if isinstance(action, argparse._SubParsersAction)
    )
    assert [name for name in commands.choices if f"`sdq {name}`" not in LAYOUT] == []


def test_every_module_the_layout_names_exists() -> None:
    root = Path(__file__).resolve().parent.parent
    named = [word.strip("`") for word in LAYOUT.split() if word.startswith("`") and ".py" in word]
    missing = [path for path in named if "/" in path and not (root / path.split("`")[0]).exists()]
    assert missing == []
