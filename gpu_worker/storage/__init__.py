"""Where images go: the ImageStore protocol and its implementations.

base   the ImageStore protocol
local  a folder (the API serves it at /images/)
s3     an S3 bucket (or MinIO, or any S3-compatible store)
"""

__all__ = [
    "base",
    "local",
    "s3",
]
