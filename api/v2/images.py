"""Where a complete job's images can be fetched: one URL per image, in order.

The first that is configured wins:

    SDQ_IMAGE_BASE_URL    a public bucket or CDN: <base>/<token>/<index:05d>.png
    SDQ_S3_PRESIGN        a private S3 bucket: presigned GET URLs (SDQ_S3_PRESIGN_S)
    SDQ_IMAGES_DIR        this API's own route: /images/<token>/<index:05d>.png

With none, the API does not know where workers store images, and says so.
"""

from __future__ import annotations

import logging
from typing import Any, Protocol

from api.settings import ApiSettings
from broker.images import image_key

log = logging.getLogger(__name__)


class ImageUrls(Protocol):
    def urls(self, token: str, number: int) -> list[str] | None:
        """The images' URLs; None when they cannot be given now."""
        ...


class PublicImages:
    def __init__(self, base_url: str) -> None:
        self.base_url = base_url.rstrip("/")

    def urls(self, token: str, number: int) -> list[str] | None:
        return [f"{self.base_url}/{image_key(token, index)}" for index in range(number)]


class LocalImages:
    """The API's /images/ route (api/images.py), relative to the API's base URL."""

    def urls(self, token: str, number: int) -> list[str] | None:
        return [f"/images/{image_key(token, index)}" for index in range(number)]


class PresignedImages:
    """Signs each GET locally (no request to S3); boto3 finds the credentials."""

    def __init__(self, client: Any, bucket: str, prefix: str, expires_s: int) -> None:
        self.client = client
        self.bucket = bucket
        self.prefix = prefix
        self.expires_s = expires_s

    def urls(self, token: str, number: int) -> list[str] | None:
        from botocore.exceptions import BotoCoreError, ClientError  # type: ignore[import-untyped]

        try:
            return [
                str(
                    self.client.generate_presigned_url(
                        "get_object",
                        Params={"Bucket": self.bucket, "Key": self.prefix + image_key(token, i)},
                        ExpiresIn=self.expires_s,
                    )
                )
                for i in range(number)
            ]
        except (BotoCoreError, ClientError) as exc:  # e.g. no credentials on this host
            log.warning("cannot presign image URLs: %s", type(exc).__name__)
            return None


def image_urls(settings: ApiSettings) -> ImageUrls | None:
    """The configured way to name images, or None when there is none."""
    if settings.image_base_url:
        return PublicImages(settings.image_base_url)
    if settings.s3_presign and settings.s3_bucket:
        return PresignedImages(
            _s3_client(settings), settings.s3_bucket, settings.s3_prefix, settings.s3_presign_s
        )
    if settings.images_dir is not None:
        return LocalImages()
    return None


def _s3_client(settings: ApiSettings) -> Any:
    try:
        import boto3  # type: ignore[import-untyped]  # boto3 ships no type hints
    except ImportError as exc:
        raise RuntimeError("SDQ_S3_PRESIGN needs boto3: pip install 'sdq[worker]'") from exc
    return boto3.client("s3", region_name=settings.s3_region, endpoint_url=settings.s3_endpoint_url)
