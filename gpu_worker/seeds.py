"""The seed of each image: a pure function of (token, index).

Recorded with the job by construction: anyone holding a job's token can
recompute the seed of every image and re-render it, and a retried job (another
attempt, another worker) renders the same images as the first attempt would
have. The renderer receives the seeds in its RenderRequest.
"""

from __future__ import annotations

import hashlib


def seed_for(token: str, index: int) -> int:
    """A 63-bit seed (fits torch.Generator.manual_seed and numpy)."""
    digest = hashlib.sha256(f"{token}/{index}".encode()).digest()
    return int.from_bytes(digest[:8], "big") >> 1
