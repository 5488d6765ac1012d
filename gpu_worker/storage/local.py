"""Images in a local folder, same layout as S3; the API serves it at /images/."""

from __future__ import annotations

import os
import tempfile
from pathlib import Path

from broker.images import MAX_IMAGES, image_key
from broker.tokens import is_token


class LocalStore:
    def __init__(self, folder: Path) -> None:
        self.folder = folder

    def put(self, token: str, index: int, png: bytes) -> None:
        """Writes atomically (temporary file, then rename): a reader never sees half a PNG."""
        if not is_token(token) or not 0 <= index < MAX_IMAGES:
            raise ValueError(f"refusing to store image {index!r} of token {token!r}")
        path = self.folder / image_key(token, index)
        path.parent.mkdir(parents=True, exist_ok=True)
        fd, temporary = tempfile.mkstemp(dir=path.parent, prefix=".partial-", suffix=".png")
        try:
            with os.fdopen(fd, "wb") as out:
                out.write(png)
            os.chmod(temporary, 0o644)  # mkstemp's 0600 would hide it from a separate web server
            os.replace(temporary, path)
        except BaseException:
            Path(temporary).unlink(missing_ok=True)
            raise
