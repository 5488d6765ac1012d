"""Images in a local folder, same layout as S3; the API serves it at /images/.

    <folder>/<token>/<index:05d>.png                 public (what the frontend loads)
    <folder>/<token>/.attempt-<fence>/<index>.png    staged by one attempt
    <folder>/<token>/.attempt-<fence>/.partial-*     being written
    <folder>/<token>/.attempt-<fence>/.replaced-*    another attempt's public file, moved aside

Staging writes a whole file under the attempt's own folder (a temporary file,
then a rename: a reader never sees half a PNG). Publishing hard-links the staged
file to the public name: `link` fails if the name exists, which makes it a
create-if-absent write, atomic on every POSIX file system. A public file the
attempt finds that is not its own (not the same inode as its staged file) was
left by a stale attempt frozen between its check and its write; the completing
attempt moves exactly that file aside (rename, then it checks the inode it
moved) and links its own. Everything of a job lives under `<token>/`, which the
folder's owner deletes when the job's images are due (broker/image_gc.py).
"""

from __future__ import annotations

import contextlib
import os
import shutil
import tempfile
from pathlib import Path

from broker.images import MAX_IMAGES, image_key
from broker.tokens import is_token
from gpu_worker.storage.base import PUBLISH_TRIES, Guard, Staged

ATTEMPT = ".attempt-"


class LocalStore:
    def __init__(self, folder: Path) -> None:
        self.folder = folder

    def public_path(self, token: str, index: int) -> Path:
        if not is_token(token) or not 0 <= index < MAX_IMAGES:
            raise ValueError(f"refusing to store image {index!r} of token {token!r}")
        return self.folder / image_key(token, index)

    def attempt_folder(self, token: str, fence: int) -> Path:
        return self.folder / token / f"{ATTEMPT}{int(fence)}"

    def stage(self, token: str, fence: int, index: int, png: bytes, guard: Guard) -> Staged:
        public = self.public_path(token, index)
        folder = self.attempt_folder(token, fence)
        guard()
        folder.mkdir(parents=True, exist_ok=True)
        fd, temporary = tempfile.mkstemp(dir=folder, prefix=".partial-", suffix=".png")
        try:
            with os.fdopen(fd, "wb") as out:
                out.write(png)
            os.chmod(temporary, 0o644)  # mkstemp's 0600 would hide it from a separate web server
            staged = folder / public.name
            os.replace(temporary, staged)
        except BaseException:
            Path(temporary).unlink(missing_ok=True)
            raise
        return Staged(token, fence, index, png, str(staged))

    def publish(self, staged: Staged, guard: Guard) -> None:
        if staged.path is None:
            raise ValueError("not staged in a folder")
        source, public = Path(staged.path), self.public_path(staged.token, staged.index)
        ours = os.stat(source)
        for _ in range(PUBLISH_TRIES):
            guard()
            try:
                os.link(source, public)
                return
            except FileExistsError:
                pass
            try:
                found = os.stat(public)
            except FileNotFoundError:
                continue  # moved aside meanwhile: link again
            if (found.st_dev, found.st_ino) == (ours.st_dev, ours.st_ino):
                return  # ours already (a retry)
            guard()
            self._move_aside(public, source.parent, staged.index, found)
        raise RuntimeError(f"{public.name} kept being replaced by other attempts")

    @staticmethod
    def _move_aside(public: Path, folder: Path, index: int, found: os.stat_result) -> None:
        """Moves the other attempt's public file into this attempt's folder; if what
        was moved is not the file found (replaced in between), it goes back."""
        aside = folder / f".replaced-{index:05d}-{found.st_ino}"
        try:
            os.rename(public, aside)
        except FileNotFoundError:
            return
        moved = os.stat(aside)
        if (moved.st_dev, moved.st_ino) != (found.st_dev, found.st_ino):
            with contextlib.suppress(FileExistsError):
                os.link(aside, public)
            aside.unlink(missing_ok=True)

    def discard(self, token: str, fence: int) -> None:
        if is_token(token):
            shutil.rmtree(self.attempt_folder(token, fence), ignore_errors=True)

    def clean(self, token: str) -> None:
        """After the job is complete: removes every attempt's staged leftovers."""
        if not is_token(token):
            return
        with contextlib.suppress(OSError):
            for entry in os.scandir(self.folder / token):
                if entry.name.startswith(ATTEMPT) and entry.is_dir(follow_symlinks=False):
                    shutil.rmtree(entry.path, ignore_errors=True)
