"""The legacy contract of ../shared/CONTRACT.md, byte for byte, and our extensions.

router     the four paths as a bare ASGI layer in front of FastAPI
endpoints  /addJob, /getJobStatus, /getNextJob, /setJobStatus
format     the byte shapes (Go's JSON encoding, key order, trailing newline)
query      query strings read as Go's net/url and strings.TrimSpace read them
rules      the contract's field checks, shared with v2 and the importer
openapi    the legacy paths in the OpenAPI schema
backend    /backend/lease, /release, /report: extensions for our HTTP workers
"""

__all__ = [
    "backend",
    "endpoints",
    "format",
    "openapi",
    "query",
    "router",
    "rules",
]
