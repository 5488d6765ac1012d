"""Images in an S3 bucket (or MinIO, or any S3-compatible store), as the frontend loads them."""

from __future__ import annotations

from typing import Any

import boto3  # type: ignore[import-untyped]  # boto3 ships no type hints
from botocore.config import Config  # type: ignore[import-untyped]

from broker.images import image_key


class S3Store:
    def __init__(
        self,
        bucket: str,
        prefix: str = "",
        region: str | None = None,
        endpoint_url: str | None = None,
        client: Any = None,
    ) -> None:
        self.bucket = bucket
        self.prefix = prefix
        # Credentials come from boto3's usual chain (environment, profile, instance role).
        self._client = client or boto3.client(
            "s3",
            region_name=region,
            endpoint_url=endpoint_url,
            config=Config(retries={"max_attempts": 3, "mode": "standard"}),
        )

    def key(self, token: str, index: int) -> str:
        return self.prefix + image_key(token, index)

    def put(self, token: str, index: int, png: bytes) -> None:
        self._client.put_object(
            Bucket=self.bucket,
            Key=self.key(token, index),
            Body=png,
            ContentType="image/png",
        )
