"""What a generation returns, and how it is written to disk (atomically, with its Recipe)."""

from __future__ import annotations

import io
import json
import os
from dataclasses import dataclass, field
from pathlib import Path

from PIL import Image, PngImagePlugin

from ..assets import atomic_write_bytes
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
        if path.suffix.lower() != ".png":
            path = path.with_name(path.name + ".png") if not path.suffix else path.with_suffix(".png")
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


def save_png(image: Image.Image, path: Path, recipe: Recipe, *, hashes: dict, sources: dict) -> Path:
    try:
        from ..metadata import save_png as metadata_save_png  # the shared writer, when present
    except ImportError:
        metadata_save_png = None
    if metadata_save_png is not None:
        return Path(metadata_save_png(image, path, recipe, hashes=hashes, sources=sources) or path)
    return _minimal_save_png(image, path, recipe, hashes=hashes, sources=sources)


def _minimal_save_png(image, path, recipe, *, hashes, sources) -> Path:
    """Stand-in until brushwork.metadata lands: A1111 parameters + the Recipe JSON."""
    info = PngImagePlugin.PngInfo()
    lines = [recipe.prompt]
    if recipe.negative_prompt:
        lines.append(f"Negative prompt: {recipe.negative_prompt}")
    lines.append(f"Steps: {recipe.steps}, Sampler: {recipe.sampler}, CFG scale: {recipe.cfg:g}, "
                 f"Seed: {recipe.seed}, Size: {recipe.width}x{recipe.height}, Model: {recipe.model}")
    info.add_text("parameters", "\n".join(lines))
    info.add_itxt("brushwork", json.dumps({"recipe": recipe.to_dict(), "hashes": hashes, "sources": sources}))
    buf = io.BytesIO()
    image.save(buf, format="PNG", pnginfo=info)
    return atomic_write_bytes(path, buf.getvalue())
