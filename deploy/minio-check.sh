#!/bin/sh
# Refuses to let the MinIO profile start with a root password anyone could guess:
# empty (what .env.example ships), shorter than 24 characters, a "change-me"
# placeholder, or any value written in .env.example (mounted at $ENV_EXAMPLE).
# POSIX sh only: the minio/mc image has no sed or grep to rely on.
# compose.yaml runs it before minio (service_completed_successfully) and again
# in minio-init; tests/deploy/test_compose.py runs it with the host's sh.
set -eu

ENV_EXAMPLE=${ENV_EXAMPLE:-/deploy/env.example}
password=${MINIO_ROOT_PASSWORD:-}

refuse() {
    echo "minio-check: MINIO_ROOT_PASSWORD $1; set a random one of 24+ characters in .env" >&2
    echo "minio-check: (e.g. openssl rand -base64 32)" >&2
    exit 1
}

[ -n "${MINIO_ROOT_USER:-}" ] || {
    echo "minio-check: MINIO_ROOT_USER is empty (MinIO would fall back to minioadmin)" >&2
    exit 1
}
[ -n "$password" ] || refuse "is empty"
[ "${#password}" -ge 24 ] || refuse "is shorter than 24 characters"
case "$password" in
    change-me*) refuse "is the placeholder" ;;
esac
if [ -r "$ENV_EXAMPLE" ]; then
    while IFS= read -r line || [ -n "$line" ]; do
        case "$line" in
            *=*) value=${line#*=} ;;
            *) continue ;;
        esac
        if [ -n "$value" ] && [ "$value" = "$password" ]; then
            refuse "is a value from .env.example"
        fi
    done < "$ENV_EXAMPLE"
fi
echo "minio-check: the root password is acceptable"
