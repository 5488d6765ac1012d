#!/bin/sh
# The MinIO profile's one-shot set-up: checks the root password (minio-check.sh),
# creates the bucket, and lets anyone GET an object of it, nothing else: browsers
# load <bucket URL>/<token>/00000.png, but nobody may list the bucket (a token is
# the v2 API's capability: whoever knows one can read the prompt and cancel it).
# The policy is minio-anonymous-read.json with the bucket's name filled in.
# POSIX sh only (the minio/mc image has no sed); MC may name another mc binary.
set -eu

here=${0%/*}
MC=${MC:-mc}
POLICY_OUT=${POLICY_OUT:-/tmp/anonymous-read.json}
bucket=${SDQ_S3_BUCKET:-}

sh "$here/minio-check.sh"
case "$bucket" in
    "" | *[!a-z0-9.-]* | [.-]* | *[.-])
        echo "minio-init: SDQ_S3_BUCKET '$bucket' is not a bucket name (a-z, 0-9, . and -)" >&2
        exit 1
        ;;
esac

: > "$POLICY_OUT"
while IFS= read -r line || [ -n "$line" ]; do
    case "$line" in
        *@SDQ_S3_BUCKET@*) line="${line%%@SDQ_S3_BUCKET@*}$bucket${line#*@SDQ_S3_BUCKET@}" ;;
    esac
    printf '%s\n' "$line" >> "$POLICY_OUT"
done < "$here/minio-anonymous-read.json"

"$MC" alias set local http://minio:9000 "$MINIO_ROOT_USER" "$MINIO_ROOT_PASSWORD"
"$MC" mb --ignore-existing "local/$bucket"
"$MC" anonymous set-json "$POLICY_OUT" "local/$bucket"
echo "minio-init: bucket $bucket: anonymous GetObject only"
