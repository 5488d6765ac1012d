"""S3 storage through the real boto3 client, against moto's S3 server on loopback:
staged in memory, published with conditional PUTs (If-None-Match: *, and If-Match
to replace exactly a stale attempt's object), which moto's server enforces."""

from __future__ import annotations

import uuid

import boto3
import pytest
from botocore.exceptions import ClientError

from gpu_worker.errors import LeaseLost
from gpu_worker.storage.s3 import S3Store

TOKEN = "45b825dd9eb2e9602749ac4b74b3d9d9"
REGION = "eu-central-1"


def allowed() -> None:
    """A guard whose lease holds."""


def lost() -> None:
    raise LeaseLost("superseded")


@pytest.fixture
def bucket(s3_endpoint: str, credentials: None) -> str:
    name = f"images-{uuid.uuid4().hex[:8]}"
    client(s3_endpoint).create_bucket(
        Bucket=name, CreateBucketConfiguration={"LocationConstraint": REGION}
    )
    return name


def client(endpoint: str):  # type: ignore[no-untyped-def]
    return boto3.client("s3", region_name=REGION, endpoint_url=endpoint)


def body(endpoint: str, bucket: str, key: str) -> bytes:
    return bytes(client(endpoint).get_object(Bucket=bucket, Key=key)["Body"].read())


def test_s3_store_publishes_pngs_where_the_frontend_loads_them(
    s3_endpoint: str, bucket: str
) -> None:
    store = S3Store(bucket, "sd/", REGION, s3_endpoint)
    for index, png in enumerate((b"\x89PNG first", b"\x89PNG second")):
        store.publish(store.stage(TOKEN, 1, index, png, allowed), allowed)

    listed = client(s3_endpoint).list_objects_v2(Bucket=bucket)["Contents"]
    assert sorted(entry["Key"] for entry in listed) == [
        f"sd/{TOKEN}/00000.png",
        f"sd/{TOKEN}/00001.png",
    ]
    stored = client(s3_endpoint).get_object(Bucket=bucket, Key=f"sd/{TOKEN}/00001.png")
    assert stored["ContentType"] == "image/png"
    assert stored["Metadata"] == {"sdq-fence": "1"}
    assert stored["Body"].read() == b"\x89PNG second"


def test_s3_store_stages_in_memory_and_writes_nothing_before_publishing(
    s3_endpoint: str, bucket: str
) -> None:
    S3Store(bucket, "", REGION, s3_endpoint).stage(TOKEN, 1, 0, b"png", allowed)

    assert client(s3_endpoint).list_objects_v2(Bucket=bucket).get("KeyCount") == 0


def test_s3_store_moto_server_enforces_conditional_puts(s3_endpoint: str, bucket: str) -> None:
    """The premise of the publish step, checked on the server the tests use."""
    s3 = client(s3_endpoint)
    s3.put_object(Bucket=bucket, Key="k", Body=b"one", IfNoneMatch="*")
    with pytest.raises(ClientError, match="PreconditionFailed"):
        s3.put_object(Bucket=bucket, Key="k", Body=b"two", IfNoneMatch="*")
    with pytest.raises(ClientError, match="PreconditionFailed"):
        s3.put_object(Bucket=bucket, Key="k", Body=b"two", IfMatch='"not-its-etag"')
    assert s3.get_object(Bucket=bucket, Key="k")["Body"].read() == b"one"


def test_s3_store_publishing_again_is_a_no_op(s3_endpoint: str, bucket: str) -> None:
    store = S3Store(bucket, "", REGION, s3_endpoint)
    staged = store.stage(TOKEN, 4, 0, b"fence 4", allowed)
    store.publish(staged, allowed)
    etag = client(s3_endpoint).head_object(Bucket=bucket, Key=f"{TOKEN}/00000.png")["ETag"]

    store.publish(staged, allowed)  # a retry whose first answer was lost

    head = client(s3_endpoint).head_object(Bucket=bucket, Key=f"{TOKEN}/00000.png")
    assert head["ETag"] == etag


def test_s3_store_replaces_exactly_the_object_a_stale_attempt_left(
    s3_endpoint: str, bucket: str
) -> None:
    store = S3Store(bucket, "", REGION, s3_endpoint)
    key = f"{TOKEN}/00000.png"
    stale = store.stage(TOKEN, 1, 0, b"from attempt 1", allowed)
    store.publish(stale, allowed)  # a frozen attempt's one write, before the job completes

    store.publish(store.stage(TOKEN, 2, 0, b"from attempt 2", allowed), allowed)

    assert body(s3_endpoint, bucket, key) == b"from attempt 2"
    assert client(s3_endpoint).head_object(Bucket=bucket, Key=key)["Metadata"] == {"sdq-fence": "2"}


def test_s3_store_never_writes_once_the_guard_refuses(s3_endpoint: str, bucket: str) -> None:
    store = S3Store(bucket, "", REGION, s3_endpoint)
    store.publish(store.stage(TOKEN, 2, 0, b"complete", allowed), allowed)
    staged = S3Store(bucket, "", REGION, s3_endpoint).stage(TOKEN, 1, 0, b"stale", allowed)

    with pytest.raises(LeaseLost):
        store.publish(staged, lost)
    with pytest.raises(LeaseLost):
        store.stage(TOKEN, 1, 1, b"stale", lost)

    assert body(s3_endpoint, bucket, f"{TOKEN}/00000.png") == b"complete"
    assert client(s3_endpoint).list_objects_v2(Bucket=bucket)["KeyCount"] == 1


def test_s3_store_raises_when_the_bucket_is_missing(s3_endpoint: str, credentials: None) -> None:
    store = S3Store("no-such-bucket", "", "us-east-1", s3_endpoint)
    with pytest.raises(Exception, match="NoSuchBucket"):
        store.publish(store.stage(TOKEN, 1, 0, b"png", allowed), allowed)
