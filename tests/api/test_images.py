"""/images/<token>/<index:05d>.png: the local image folder, read-only, nothing else."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import httpx
import pytest
from redis.asyncio import Redis

from api.app import create_app
from api.settings import ApiSettings

TOKEN = "45b825dd9eb2e9602749ac4b74b3d9d9"


@pytest.fixture
async def images(
    redis: Redis, settings: ApiSettings, tmp_path: Path
) -> AsyncIterator[tuple[httpx.AsyncClient, Path]]:
    folder = tmp_path / "images"
    (folder / TOKEN).mkdir(parents=True)
    (folder / TOKEN / "00000.png").write_bytes(b"\x89PNG zero")
    (tmp_path / "secret.png").write_bytes(b"outside")
    app = create_app(settings.model_copy(update={"images_dir": folder}), redis=redis)
    async with app.router.lifespan_context(app):
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://sdq.test") as http:
            yield http, folder


async def test_images_serves_a_stored_png(images: tuple[httpx.AsyncClient, Path]) -> None:
    http, _ = images
    reply = await http.get(f"/images/{TOKEN}/00000.png")
    assert reply.status_code == 200
    assert reply.headers["content-type"] == "image/png"
    assert reply.headers["x-content-type-options"] == "nosniff"
    assert reply.content == b"\x89PNG zero"


@pytest.mark.parametrize(
    "path",
    [
        f"/images/{TOKEN}/00001.png",  # not stored (yet)
        f"/images/{TOKEN.upper()}/00000.png",
        f"/images/{TOKEN[:-1]}/00000.png",
        f"/images/{TOKEN}/0000.png",
        f"/images/{TOKEN}/00000.PNG",
        f"/images/{TOKEN}/00000.png.bak",
        "/images/..%2Fsecret.png/00000.png",
        f"/images/{TOKEN}/..%2F..%2Fsecret.png",
        f"/images/{TOKEN}/",  # no listing of a job's images
        "/images/",  # no listing of tokens
    ],
)
async def test_images_answers_404_to_anything_but_a_well_formed_stored_image(
    images: tuple[httpx.AsyncClient, Path], path: str
) -> None:
    http, _ = images
    reply = await http.get(path)
    assert reply.status_code == 404
    assert b"outside" not in reply.content


async def test_images_does_not_follow_a_link_out_of_the_folder(
    images: tuple[httpx.AsyncClient, Path],
) -> None:
    http, folder = images
    (folder / TOKEN / "00002.png").symlink_to(folder.parent / "secret.png")
    assert (await http.get(f"/images/{TOKEN}/00002.png")).status_code == 404


async def test_images_is_read_only(images: tuple[httpx.AsyncClient, Path]) -> None:
    http, _ = images
    for method in ("PUT", "POST", "DELETE"):
        reply = await http.request(method, f"/images/{TOKEN}/00000.png", content=b"x")
        assert reply.status_code == 405


async def test_images_are_not_served_without_an_images_dir(client: httpx.AsyncClient) -> None:
    assert (await client.get(f"/images/{TOKEN}/00000.png")).status_code == 404
