"""The Ray actor: one long-lived process per GPU (or CPU slot) holding a warm Studio.

Models load on the actor's first row and stay loaded for the rest of the batch. Inputs arrive as
``sha256:`` refs plus Ray object refs to their bytes; the actor fetches only those its asset store
lacks. It returns the PNG's bytes: the driver writes the files, so nothing depends on a shared
disk. Errors come back as data (one line), never as exceptions, so a bad row costs only itself.
"""

from __future__ import annotations

import os
import socket
from typing import Any


class StudioActor:
    def __init__(self, device: str | None = None):
        # The Studio (torch, diffusers) is built here, once per actor.
        from ..engine.studio import Studio

        self.studio = Studio(device=device)

    def describe(self) -> dict:
        from .memory import device_memory

        device = str(self.studio.device)
        return {"device": device, "memory": device_memory(device), "host": socket.gethostname(),
                "pid": os.getpid()}

    def run(self, recipe: dict, blobs: dict[str, Any]) -> dict:
        import ray

        from ..assets import content_ref
        from ..recipe import Recipe
        from .runners import run_in_studio

        def fetch(ref: str, obj) -> bytes:
            data = ray.get(obj)
            if content_ref(data) != ref:
                raise ValueError(f"input {ref[:19]}... arrived with other bytes")
            return data

        readers = {ref: (lambda ref=ref, obj=obj: fetch(ref, obj)) for ref, obj in blobs.items()}
        outcome = run_in_studio(self.studio, Recipe.from_dict(recipe), readers)
        m = outcome.measure
        return {"png": outcome.png, "error": outcome.error, "seconds": m.seconds if m else 0.0,
                "peak_bytes": m.peak_bytes if m else None, "resident_bytes": m.resident_bytes if m else None}
