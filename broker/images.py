"""Where a job's images live: `<token>/<index:05d>.png`, as the existing frontend loads
them from `<bucket or base URL>/<token>/0000<i>.png`. Workers write these keys; the
API names and serves them. Nothing else may define the layout.

In a local folder everything of a job (its public images and each attempt's own
staged files, gpu_worker/storage/local.py) lives under `<token>/`, so deleting a
job's images is deleting that folder (broker/image_gc.py).

A live preview (renew_lease.lua) is a small JPEG: at most PREVIEW_MAX_SIDE pixels
on its longer side and PREVIEW_MAX_BYTES long, so it fits in a heartbeat (and its
base64 in one /backend/lease body, whose limit is 64 KiB).
"""

from __future__ import annotations

MAX_IMAGES = 100_000  # five digits
# The contract's four sizes (width, height): the only ones a job can have, and so the
# shapes a worker warms its compiled model up for before its first job.
SIZES = ((1024, 576), (768, 576), (576, 768), (576, 576))
PREVIEW_MAX_SIDE = 256
PREVIEW_MAX_BYTES = 32 * 1024


def image_key(token: str, index: int) -> str:
    return f"{token}/{index:05d}.png"
