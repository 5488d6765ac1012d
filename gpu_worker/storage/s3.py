"""Images in an S3 bucket (or MinIO, or any S3-compatible store), as the frontend loads them.

An attempt stages its images in memory (a job's PNGs are a few MB) and the
fenced completion publishes each with a conditional PUT: `If-None-Match: *`
creates the key only if it is absent (S3 since 2024, MinIO, R2, moto's server).
The object records its attempt (`x-amz-meta-sdq-fence`; its bytes do too, so
two attempts' objects never share an ETag). A key that exists already is ours
(a retried PUT whose first answer was lost), or a stale attempt's: that one is
replaced with `If-Match: <its ETag>`, so exactly that object and no newer one.

Why not stage in the bucket and publish by a server-side copy: CopyObject's
`If-None-Match` is newer than PutObject's and not offered by every
S3-compatible store (moto's server ignores it on copies), and an upload to an
attempt key plus a copy costs more requests than the one PUT per image. The
PUTs overlap the render of the next job (the worker claims one job ahead), so
the GPU does not wait for them.
"""

from __future__ import annotations

from typing import Any

import boto3  # type: ignore[import-untyped]  # boto3 ships no type hints
from botocore.config import Config  # type: ignore[import-untyped]
from botocore.exceptions import ClientError  # type: ignore[import-untyped]

from broker.images import image_key
from gpu_worker.storage.base import PUBLISH_TRIES, Guard, Staged

FENCE = "sdq-fence"  # the object's metadata naming the attempt that wrote it
_TAKEN = {"PreconditionFailed", "412", "ConditionalRequestConflict", "409"}


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

    def stage(self, token: str, fence: int, index: int, png: bytes, guard: Guard) -> Staged:
        guard()
        self.key(token, index)  # a bad index fails now, not at publication
        return Staged(token, fence, index, png)

    def publish(self, staged: Staged, guard: Guard) -> None:
        key = self.key(staged.token, staged.index)
        for _ in range(PUBLISH_TRIES):
            guard()
            if self._put(key, staged, IfNoneMatch="*"):
                return
            found = self._head(key)
            if found is None:
                continue  # gone meanwhile: create it again
            if found.get("Metadata", {}).get(FENCE) == str(staged.fence):
                return  # ours already
            guard()
            if self._put(key, staged, IfMatch=found["ETag"]):
                return
        raise RuntimeError(f"{key} kept being replaced by other attempts")

    def discard(self, token: str, fence: int) -> None:
        """Nothing staged in the bucket."""

    def clean(self, token: str) -> None:
        """Nothing staged in the bucket."""

    def _put(self, key: str, staged: Staged, **condition: str) -> bool:
        """One conditional PUT; False when its condition failed."""
        try:
            self._client.put_object(
                Bucket=self.bucket,
                Key=key,
                Body=staged.png,
                ContentType="image/png",
                Metadata={FENCE: str(staged.fence)},
                **condition,
            )
        except ClientError as exc:
            if _code(exc) in _TAKEN:
                return False
            raise
        return True

    def _head(self, key: str) -> dict[str, Any] | None:
        try:
            head: dict[str, Any] = self._client.head_object(Bucket=self.bucket, Key=key)
        except ClientError as exc:
            if _code(exc) in {"404", "NoSuchKey", "NotFound"}:
                return None
            raise
        return head


def _code(exc: ClientError) -> str:
    return str(exc.response.get("Error", {}).get("Code", ""))
