"""S3 storage through the real boto3 client, against moto's S3 server on loopback."""

from __future__ import annotations

import boto3
import pytest

from gpu_worker.storage.s3 import S3Store

TOKEN = "45b825dd9eb2e9602749ac4b74b3d9d9"


def test_s3_store_puts_pngs_where_the_frontend_loads_them(
    s3_endpoint: str, credentials: None
) -> None:
    client = boto3.client("s3", region_name="eu-central-1", endpoint_url=s3_endpoint)
    client.create_bucket(
        Bucket="images", CreateBucketConfiguration={"LocationConstraint": "eu-central-1"}
    )
    store = S3Store("images", "sd/", "eu-central-1", s3_endpoint)
    store.put(TOKEN, 0, b"\x89PNG first")
    store.put(TOKEN, 1, b"\x89PNG second")
    listed = client.list_objects_v2(Bucket="images")["Contents"]
    assert sorted(entry["Key"] for entry in listed) == [
        f"sd/{TOKEN}/00000.png",
        f"sd/{TOKEN}/00001.png",
    ]
    stored = client.get_object(Bucket="images", Key=f"sd/{TOKEN}/00001.png")
    assert stored["ContentType"] == "image/png"
    assert stored["Body"].read() == b"\x89PNG second"


def test_s3_store_raises_when_the_bucket_is_missing(s3_endpoint: str, credentials: None) -> None:
    store = S3Store("no-such-bucket", "", "us-east-1", s3_endpoint)
    with pytest.raises(Exception, match="NoSuchBucket"):
        store.put(TOKEN, 0, b"png")
