"""Where jobs come from: the JobSource protocol and its two transports.

base         the JobSource protocol
redis        straight from Redis (the broker's scripts)
http         the legacy backend protocol through the API, plus our extensions
http_client  the HTTP client behind the http source
"""

__all__ = [
    "base",
    "http",
    "http_client",
    "redis",
]
