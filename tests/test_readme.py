"""The README documents every setting a process reads (ops rely on that table)."""

from pathlib import Path

import pytest
from pydantic_settings import BaseSettings

from api.settings import ApiSettings
from gpu_worker.settings import WorkerSettings

README = (Path(__file__).parent.parent / "README.md").read_text(encoding="utf-8")


@pytest.mark.parametrize("settings", [ApiSettings, WorkerSettings])
def test_readme_documents_every_setting(settings: type[BaseSettings]) -> None:
    missing = [
        f"SDQ_{name.upper()}"
        for name in settings.model_fields
        if f"`SDQ_{name.upper()}`" not in README
    ]
    assert missing == []


def test_readme_quick_start_names_the_two_commands() -> None:
    assert "scripts/up" in README
    assert "scripts/test" in README
    ci = (Path(__file__).parent.parent / ".ci" / "run").read_text(encoding="utf-8")
    assert "scripts/test" in ci
