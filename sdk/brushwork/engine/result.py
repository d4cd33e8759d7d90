"""What a generation returns, and how it is written to disk (atomically, with its Recipe)."""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path

from PIL import Image

from ..metadata import save_png
from ..recipe import Recipe


@dataclass
class Result:
    images: list[Image.Image]
    seeds: list[int]
    recipe: Recipe  # as run: seed filled in, <lora:> tags moved to .loras, inputs as sha256: refs
    hashes: dict = field(default_factory=dict)  # sha256 of model files, LoRAs, inputs
    sources: dict = field(default_factory=dict)  # where each model came from (hub id, path)
    timings: dict = field(default_factory=dict)  # seconds: load, generate (for logs/benchmarks)

    def recipe_for(self, index: int) -> Recipe:
        """The recipe that reproduces image ``index`` alone: its own seed, batch 1."""
        return self.recipe.replace(seed=self.seeds[index], batch=1)

    def paths_for(self, path: str | os.PathLike) -> list[Path]:
        path = Path(path)
        if path.suffix.lower() != ".png":  # a stem ("out", "job.2026-11-22"): add, never replace
            path = path.with_name(path.name + ".png")
        if len(self.images) == 1:
            return [path]
        return [path.with_name(f"{path.stem}-{i + 1}{path.suffix}") for i in range(len(self.images))]

    def save(self, path: str | os.PathLike) -> list[Path]:
        """Write every image as PNG with its metadata; batch → stem-1.png, stem-2.png, ...

        Each file is written atomically; if one fails, the files this call already wrote are
        removed, so a failed save leaves nothing half done behind.
        """
        written: list[Path] = []
        try:
            for i, target in enumerate(self.paths_for(path)):
                save_png(self.images[i], target, self.recipe_for(i), hashes=self.hashes, sources=self.sources)
                written.append(target)
        except BaseException:
            for done in written:
                done.unlink(missing_ok=True)
            raise
        return written
