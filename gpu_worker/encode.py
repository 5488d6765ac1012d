"""Images to bytes: the PNGs a job publishes and the small JPEG previews it shows.

PNG encoding runs on the worker's encode/upload pool, beside the GPU: Pillow
releases the GIL while zlib compresses, so the render thread is not held up.
The compression level is SDQ_PNG_COMPRESS_LEVEL, chosen by measurement
(`python -m bench.png`, docs/worker.md): for images of photographic entropy
level 4 makes files as small as levels 6 to 9 in 45-100 % of level 6's time;
levels 1-3 save another 30-55 % of the time but make files 7-18 % larger, and
every byte is stored, uploaded and downloaded by every viewer.

Every PNG also records the attempt that made it (`sdq:fence`), so two attempts'
files never have the same bytes (nor the same S3 ETag), which is what lets the
publish step tell its own object from another attempt's (storage/s3.py).
"""

from __future__ import annotations

import io
from collections.abc import Mapping

from PIL import Image
from PIL.PngImagePlugin import PngInfo

from broker.images import PREVIEW_MAX_BYTES, PREVIEW_MAX_SIDE

PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"


def png(image: Image.Image, text: Mapping[str, str], level: int) -> bytes:
    """The PNG of `image` with its text chunks, at zlib level `level` (0-9)."""
    info = PngInfo()
    for key, value in text.items():
        info.add_text(key, value)
    out = io.BytesIO()
    image.save(out, format="PNG", pnginfo=info, compress_level=level)
    return out.getvalue()


def small(image: Image.Image, side: int = PREVIEW_MAX_SIDE) -> Image.Image:
    """`image` scaled to at most `side` pixels on its longer side (never up)."""
    longer = max(image.size)
    if longer <= side:
        return image
    scale = side / longer
    size = (max(1, round(image.width * scale)), max(1, round(image.height * scale)))
    return image.resize(size, Image.Resampling.BILINEAR)


def preview_jpeg(image: Image.Image) -> bytes | None:
    """A preview: at most PREVIEW_MAX_SIDE px, JPEG; None if it will not fit the limit."""
    picture = small(image).convert("RGB")
    for quality in (75, 50, 30):
        out = io.BytesIO()
        picture.save(out, format="JPEG", quality=quality)
        if out.tell() <= PREVIEW_MAX_BYTES:
            return out.getvalue()
    return None
