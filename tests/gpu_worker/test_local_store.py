"""Local storage: each attempt stages under its own folder, publishes by hard link
(create-if-absent), replaces only a public file it did not write, and never writes
once its lease check refuses."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from broker.image_gc import delete_folder
from gpu_worker.errors import LeaseLost
from gpu_worker.storage.local import LocalStore

TOKEN = "0123456789abcdef" * 2


def allowed() -> None:
    """A guard whose lease holds."""


def lost() -> None:
    raise LeaseLost("superseded")


def test_local_store_publishes_the_frontend_layout(tmp_path: Path) -> None:
    store = LocalStore(tmp_path)
    for index in (0, 12):
        store.publish(store.stage(TOKEN, 1, index, b"png-%d" % index, allowed), allowed)

    assert (tmp_path / TOKEN / "00000.png").read_bytes() == b"png-0"
    assert (tmp_path / TOKEN / "00012.png").read_bytes() == b"png-12"
    public = sorted(p.name for p in (tmp_path / TOKEN).iterdir() if p.is_file())
    assert public == ["00000.png", "00012.png"]
    assert oct((tmp_path / TOKEN / "00000.png").stat().st_mode & 0o777) == "0o644"


def test_local_store_stages_under_the_attempts_own_folder(tmp_path: Path) -> None:
    store = LocalStore(tmp_path)

    staged = store.stage(TOKEN, 7, 3, b"png", allowed)

    assert staged.path == str(tmp_path / TOKEN / ".attempt-7" / "00003.png")
    assert not (tmp_path / TOKEN / "00003.png").exists()


def test_local_store_publishes_by_link_so_a_retry_is_a_no_op(tmp_path: Path) -> None:
    store = LocalStore(tmp_path)
    staged = store.stage(TOKEN, 1, 0, b"png", allowed)
    store.publish(staged, allowed)

    store.publish(staged, allowed)

    public = tmp_path / TOKEN / "00000.png"
    assert os.path.samefile(public, staged.path or "")


def test_local_store_replaces_a_public_file_another_attempt_left(tmp_path: Path) -> None:
    store = LocalStore(tmp_path)
    store.publish(store.stage(TOKEN, 1, 0, b"stale", allowed), allowed)  # a frozen one's write
    mine = store.stage(TOKEN, 2, 0, b"mine", allowed)

    store.publish(mine, allowed)

    public = tmp_path / TOKEN / "00000.png"
    assert public.read_bytes() == b"mine" and os.path.samefile(public, mine.path or "")
    store.clean(TOKEN)
    assert sorted(p.name for p in (tmp_path / TOKEN).iterdir()) == ["00000.png"]


def test_local_store_writes_nothing_once_the_guard_refuses(tmp_path: Path) -> None:
    store = LocalStore(tmp_path)
    complete = store.stage(TOKEN, 2, 0, b"complete", allowed)
    store.publish(complete, allowed)
    stale = store.stage(TOKEN, 1, 0, b"stale", allowed)
    inode = (tmp_path / TOKEN / "00000.png").stat().st_ino

    with pytest.raises(LeaseLost):
        store.publish(stale, lost)
    with pytest.raises(LeaseLost):
        store.stage(TOKEN, 1, 1, b"stale", lost)

    public = tmp_path / TOKEN / "00000.png"
    assert (public.read_bytes(), public.stat().st_ino) == (b"complete", inode)
    assert not (tmp_path / TOKEN / ".attempt-1" / "00001.png").exists()


def test_local_store_discard_and_clean_keep_the_public_files(tmp_path: Path) -> None:
    store = LocalStore(tmp_path)
    store.stage(TOKEN, 1, 0, b"abandoned", allowed)
    store.publish(store.stage(TOKEN, 2, 0, b"done", allowed), allowed)

    store.discard(TOKEN, 1)
    assert not (tmp_path / TOKEN / ".attempt-1").exists()
    store.clean(TOKEN)

    assert [p.name for p in (tmp_path / TOKEN).iterdir()] == ["00000.png"]
    assert (tmp_path / TOKEN / "00000.png").read_bytes() == b"done"


@pytest.mark.parametrize("token", ["../" + "a" * 29, "A" * 32, "a" * 31, "a" * 31 + "/"])
def test_local_store_refuses_a_token_that_is_not_lower_hex(tmp_path: Path, token: str) -> None:
    with pytest.raises(ValueError, match="refusing"):
        LocalStore(tmp_path / "images").stage(token, 1, 0, b"x", allowed)
    assert not (tmp_path / "images").exists()


def test_image_gc_deletes_a_tokens_folder_and_nothing_else(tmp_path: Path) -> None:
    store = LocalStore(tmp_path)
    other = "f" * 32
    for token in (TOKEN, other):
        store.publish(store.stage(token, 1, 0, b"png", allowed), allowed)

    assert delete_folder(tmp_path, TOKEN)
    assert not delete_folder(tmp_path, TOKEN)  # gone already
    assert not delete_folder(tmp_path, "..")

    assert not (tmp_path / TOKEN).exists() and (tmp_path / other / "00000.png").exists()
