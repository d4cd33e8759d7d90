"""Content-addressed assets (stdlib only): images, masks and raw signals referenced by a Recipe.

A reference is either a filesystem path or ``sha256:<hex>``. The worker keeps uploads in an
``AssetStore``; clients hash with ``content_ref`` to ask first and upload only what is missing.
"""

from __future__ import annotations

import contextlib
import hashlib
import os
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import BinaryIO

from .errors import InputImageError
from .recipe import is_content_ref


def content_ref(data: bytes) -> str:
    return "sha256:" + hashlib.sha256(data).hexdigest()


def file_sha256(path: str | os.PathLike[str], chunk: int = 1 << 20) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        while block := f.read(chunk):
            h.update(block)
    return h.hexdigest()


def _current_umask() -> int:
    """The process umask, read without changing it where the OS allows (Linux: /proc), because
    setting it even for a moment races with other threads creating files (the worker's)."""
    try:
        with open("/proc/self/status", encoding="ascii") as status:
            for line in status:
                if line.startswith("Umask:"):
                    return int(line.split()[1], 8)
    except (OSError, ValueError):
        pass
    umask = os.umask(0o077)  # elsewhere: the briefest window, and never wider than 0600 meanwhile
    os.umask(umask)
    return umask


def _default_file_mode() -> int:
    # mkstemp creates 0600 files; a picture or document should get what open() would give it.
    return 0o666 & ~_current_umask()


@contextlib.contextmanager
def atomic_writer(path: str | os.PathLike[str], *, mode: int | None = None) -> Iterator[BinaryIO]:
    """Yield a binary file that becomes ``path`` only when the block ends without an error:
    written beside it, fsynced, then renamed, so readers never see half a file and a failure
    leaves the old file (or nothing) in place."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".part", dir=path.parent)
    try:
        os.chmod(tmp, _default_file_mode() if mode is None else mode)
        with os.fdopen(fd, "wb") as f:
            yield f
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        try:
            os.unlink(tmp)
        except FileNotFoundError:
            pass
        raise


def atomic_write_bytes(path: str | os.PathLike[str], data: bytes, *, mode: int | None = None) -> Path:
    """Write ``data`` to ``path`` atomically (see ``atomic_writer``)."""
    with atomic_writer(path, mode=mode) as f:
        f.write(data)
    return Path(path)


class AssetStore:
    """A folder of blobs named by their sha256. Writes are atomic; a blob is immutable."""

    def __init__(self, root: str | os.PathLike[str]):
        self.root = Path(root)
        self.root.mkdir(parents=True, exist_ok=True)

    def path(self, ref: str) -> Path:
        if not is_content_ref(ref):
            raise InputImageError(f"not a content reference: {ref[:80]!r}")
        digest = ref.split(":", 1)[1]
        return self.root / digest[:2] / digest

    def has(self, ref: str) -> bool:
        return is_content_ref(ref) and self.path(ref).is_file()

    def put(self, data: bytes) -> str:
        ref = content_ref(data)
        target = self.path(ref)
        if not target.exists():
            atomic_write_bytes(target, data)
        return ref

    def get(self, ref: str) -> bytes:
        target = self.path(ref)
        try:
            return target.read_bytes()
        except FileNotFoundError:
            raise InputImageError(f"{ref} is not in the asset store (upload it first)") from None


def read_ref(ref: str, store: AssetStore | None = None, *, allow_paths: bool = True) -> bytes:
    """The bytes behind a reference. The worker passes ``allow_paths=False``: clients may not
    make it read arbitrary files."""
    if is_content_ref(ref):
        if store is None:
            raise InputImageError(f"{ref}: no asset store to look it up in")
        return store.get(ref)
    if ref.startswith("sha256:"):
        raise InputImageError(f"malformed content reference {ref[:80]!r}")
    if not allow_paths:
        raise InputImageError("file paths are not accepted here: upload the file and send its sha256: reference")
    try:
        return Path(ref).expanduser().read_bytes()
    except FileNotFoundError:
        raise InputImageError(f"{ref}: no such file") from None
    except IsADirectoryError:
        raise InputImageError(f"{ref}: is a folder, not an image") from None
    except PermissionError:
        raise InputImageError(f"{ref}: permission denied") from None
