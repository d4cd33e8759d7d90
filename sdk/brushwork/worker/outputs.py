"""Where results go: named destinations only, never a folder a client sent.

A job names a destination (``"default"`` is ``paths.outputs_dir()``); more names come from
``<config dir>/worker.toml``::

    [destinations]
    textures = "~/Pictures/textures"

Files are ``<folder>/<YYYY-MM-DD>/<HHMMSS>-<job id>.png`` (batch: ``-1.png``, ``-2.png`` ...).
"""

from __future__ import annotations

import os
import re
import shutil
import time
import tomllib
from pathlib import Path

from .. import paths, protocol
from ..errors import BrushworkError, OutputFolderError

# A destination with less free space than this refuses new jobs (a 1024² PNG is ~2 MB).
MIN_FREE_BYTES = 32 * 1024 * 1024

_NAME = re.compile(r"^[A-Za-z0-9_.-]{1,64}$")


class DestinationError(BrushworkError):
    code = "bad_destination"


class Outputs:
    def __init__(self, folders: dict[str, Path]):
        self.folders = dict(folders)

    @classmethod
    def load(cls) -> Outputs:
        folders = {protocol.DEFAULT_DESTINATION: paths.outputs_dir()}
        config = paths.config_dir() / "worker.toml"
        if config.is_file():
            try:
                data = tomllib.loads(config.read_text(encoding="utf-8"))
            except (tomllib.TOMLDecodeError, UnicodeDecodeError) as exc:
                raise BrushworkError(f"{config}: not valid TOML ({exc})") from None
            for name, folder in (data.get("destinations") or {}).items():
                if _NAME.match(str(name)) and isinstance(folder, str) and folder:
                    folders[str(name)] = Path(folder).expanduser()
        return cls(folders)

    def check(self, name: object) -> str:
        """The destination name, or DestinationError naming the known ones."""
        if name is None or name == "":
            return protocol.DEFAULT_DESTINATION
        if not isinstance(name, str) or name not in self.folders:
            shown = repr(name)[:80]
            raise DestinationError(f"destination: unknown destination {shown} (known: "
                                   f"{', '.join(sorted(self.folders))}); destinations are names, not paths")
        return name

    def check_writable(self, name: str) -> None:
        """OutputFolderError now (at submit) when the folder could not take a result: a read-only
        file system, no write permission, a file in the way, or under MIN_FREE_BYTES free."""
        folder = self.folders[name]
        existing = folder
        while not existing.exists() and existing.parent != existing:
            existing = existing.parent
        why = None
        if not existing.is_dir():
            why = f"{existing} is not a folder"
        else:
            try:
                stats = os.statvfs(existing) if hasattr(os, "statvfs") else None
                free = shutil.disk_usage(existing).free
            except OSError as exc:
                stats, free, why = None, 0, f"cannot read it ({exc.strerror or exc})"
            if why is None and stats is not None and stats.f_flag & os.ST_RDONLY:
                why = "it is on a read-only file system"
            elif why is None and not os.access(existing, os.W_OK | os.X_OK):
                why = "no permission to write there"
            elif why is None and free < MIN_FREE_BYTES:
                why = f"only {free // 1024} KiB free (at least {MIN_FREE_BYTES // (1024 * 1024)} MiB needed)"
        if why:
            raise OutputFolderError(f"destination {name!r} ({folder}) cannot take results: {why}")

    def free_bytes(self) -> dict[str, int | None]:
        out: dict[str, int | None] = {}
        for name, folder in self.folders.items():
            existing = folder
            while not existing.exists() and existing.parent != existing:
                existing = existing.parent
            try:
                out[name] = shutil.disk_usage(existing).free
            except OSError:
                out[name] = None
        return out

    def stem_for(self, destination: str, job_id: str) -> Path:
        now = time.localtime()
        day = time.strftime("%Y-%m-%d", now)
        return self.folders[destination] / day / f"{time.strftime('%H%M%S', now)}-{job_id}.png"

    def sweep_partials(self) -> int:
        """Remove temp files a killed worker left behind (atomic writes use ``.<name>.*.part``)."""
        removed = 0
        for folder in self.folders.values():
            if not folder.is_dir():
                continue
            for part in list(folder.glob(".*.part")) + list(folder.glob("*/.*.part")):
                try:
                    part.unlink()
                    removed += 1
                except OSError:
                    pass
        return removed
