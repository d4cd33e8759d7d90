"""Where results go: named destinations only, never a folder a client sent.

A job names a destination (``"default"`` is ``paths.outputs_dir()``); more names come from
``<config dir>/worker.toml``::

    [destinations]
    textures = "~/Pictures/textures"

Files are ``<folder>/<YYYY-MM-DD>/<HHMMSS>-<job id>.png`` (batch: ``-1.png``, ``-2.png`` ...).
"""

from __future__ import annotations

import re
import time
import tomllib
from pathlib import Path

from .. import paths, protocol
from ..errors import BrushworkError

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

    def stem_for(self, destination: str, job_id: str) -> Path:
        now = time.localtime()
        return self.folders[destination] / time.strftime("%Y-%m-%d", now) / f"{time.strftime('%H%M%S', now)}-{job_id}.png"

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
