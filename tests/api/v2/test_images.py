"""Image URLs of a complete job: presigned GETs for a private bucket, through real
boto3 against moto's S3 server on loopback (the URL must fetch the image; moto
does not check signatures, so the signing itself is boto3's, not re-tested here)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import boto3  # type: ignore[import-untyped]  # boto3 ships no type hints
import httpx
import pytest
from pydantic import SecretStr

from api.settings import ApiSettings
from api.v2.images import LocalImages, PresignedImages, PublicImages, image_urls

TOKEN = "45b825dd9eb2e9602749ac4b74b3d9d9"


def api_settings(**values: Any) -> ApiSettings:
    return ApiSettings(backend_secrets=[SecretStr("s" * 32)], insecure_skip_captcha=True, **values)


def test_image_urls_presigned_for_a_private_bucket_fetch_the_image(
    s3_endpoint: str, credentials: None
) -> None:
    s3 = boto3.client("s3", region_name="eu-central-1", endpoint_url=s3_endpoint)
    s3.create_bucket(
        Bucket="private-images",
        CreateBucketConfiguration={"LocationConstraint": "eu-central-1"},
    )
    s3.put_object(Bucket="private-images", Key=f"sd/{TOKEN}/00001.png", Body=b"\x89PNG-1")
    settings = api_settings(
        s3_presign=True,
        s3_bucket="private-images",
        s3_prefix="sd/",
        s3_region="eu-central-1",
        s3_endpoint_url=s3_endpoint,
        s3_presign_s=600,
    )
    locator = image_urls(settings)
    assert isinstance(locator, PresignedImages)
    urls = locator.urls(TOKEN, 2)
    assert urls is not None and len(urls) == 2
    assert f"/sd/{TOKEN}/00000.png?" in urls[0]
    assert "X-Amz-Expires=600" in urls[1]
    assert httpx.get(urls[1]).content == b"\x89PNG-1"


def test_image_urls_first_configured_location_wins(tmp_path: Path) -> None:
    public = image_urls(api_settings(image_base_url="https://cdn.example.org", images_dir=tmp_path))
    assert isinstance(public, PublicImages)
    assert public.urls(TOKEN, 1) == [f"https://cdn.example.org/{TOKEN}/00000.png"]
    assert isinstance(image_urls(api_settings(images_dir=tmp_path)), LocalImages)
    assert image_urls(api_settings()) is None


def test_settings_refuse_presigning_without_a_bucket() -> None:
    with pytest.raises(ValueError, match="SDQ_S3_PRESIGN needs SDQ_S3_BUCKET"):
        api_settings(s3_presign=True)


def test_settings_refuse_an_image_base_url_that_is_not_http() -> None:
    with pytest.raises(ValueError, match="image_base_url"):
        api_settings(image_base_url="ftp://example.org/images")
