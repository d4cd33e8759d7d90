"""The settings a model wants when the user does not say: size, steps, CFG, sampler (stdlib only).

Pure: everything here is a function of facts the resolver already has (family, variant, name,
hub id) plus what the model itself carries, read without torch: the demo's ``demo.json``, a
diffusers folder's UNet ``sample_size``, a safetensors header's ``modelspec.*`` metadata. Nothing
is loaded or downloaded.

The rule for a generation is *explicit beats everything*: a value the user gave wins; the model's
defaults fill only the fields the user left out. A Recipe leaves them out by leaving them None
(``recipe.MODEL_DEFAULTED``); the Studio fills them from ``defaults_for_ref`` of the model it
resolved (``Recipe.with_defaults``), for the Python API, the worker and the CLI alike, and the
output PNG records the filled values.
"""

from __future__ import annotations

import json
import math
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from ..recipe import MODEL_DEFAULTED
from . import registry

DEFAULTED_FIELDS = MODEL_DEFAULTED

# Per variant when the model is not a known hub id. Lightning/Hyper-style distilled models ("few"):
# a handful of Euler steps and no guidance, like their model cards say (their weights look like
# base models', so only the name tells).
_VARIANTS: dict[str, dict[str, Any]] = {
    "base": {"steps": 25, "cfg": 7.0, "sampler": "DPM++ 2M Karras"},
    "inpaint": {"steps": 25, "cfg": 7.0, "sampler": "DPM++ 2M Karras"},
    "turbo": {"steps": 1, "cfg": 0.0, "sampler": "Euler a"},
    "lcm": {"steps": 4, "cfg": 1.5, "sampler": "LCM"},
    "few": {"steps": 4, "cfg": 1.0, "sampler": "Euler"},
}
_FAMILY_SIDE = {"sd15": 512, "sd2": 512, "sdxl": 1024}
_SDXL_CFG = 6.0  # SDXL base: a little lower than SD 1.5's 7
FEW_STEP_VARIANTS = ("turbo", "lcm", "few")


@dataclass(frozen=True)
class ModelDefaults:
    width: int
    height: int
    steps: int
    cfg: float
    sampler: str
    family: str | None
    variant: str
    why: str  # where these come from, for --help / models info / the canvas

    @property
    def few_step(self) -> bool:
        return self.variant in FEW_STEP_VARIANTS

    def as_fields(self) -> dict[str, Any]:
        return {k: v for k, v in asdict(self).items() if k in DEFAULTED_FIELDS}

    def describe(self) -> str:
        steps = f"{self.steps} step{'s' if self.steps != 1 else ''}"
        return f"{self.width}x{self.height}, {steps}, CFG {self.cfg:g}, {self.sampler} ({self.why})"


def few_step_hint(name: str) -> str | None:
    """Lightning/Hyper-SD style distilled models are named so; their weights look like base."""
    low = name.lower()
    return "few" if any(word in low for word in ("lightning", "hyper-sd", "hypersd", "hyper_sd", "dmd2")) else None


def defaults_for(family: str | None, variant: str = "base", *, name: str = "", hub_id: str | None = None,
                 manifest: dict | None = None, native_side: int | None = None,
                 metadata: dict[str, str] | None = None) -> ModelDefaults:
    """The defaults for a model described by these facts (most specific source wins):

    1. a bundled model's manifest (``demo.json``: native size and recommended settings);
    2. a known hub id (``models.registry``);
    3. the variant's rule (turbo, LCM, few-step, inpaint, base) and the family's side;
    then the size is replaced by what the model's own files say (safetensors ``modelspec.resolution``,
    a diffusers UNet's ``sample_size``)."""
    variant = few_step_hint(name or hub_id or "") or variant or "base"
    why = f"{family or 'unknown family'} {variant}"
    settings = dict(_VARIANTS.get(variant, _VARIANTS["base"]))
    if family == "sdxl" and variant in ("base", "inpaint"):
        settings.update(cfg=_SDXL_CFG, steps=30)
    side = _FAMILY_SIDE.get(family or "", 512)
    if family == "sdxl" and variant == "turbo":
        side = 512  # sdxl-turbo was distilled at 512
    if hub_id and (known := registry.known(hub_id)):
        settings = {"steps": known.steps, "cfg": known.cfg, "sampler": known.sampler}
        side, why = known.size, f"known model {known.hub_id}"
    width = height = side
    from_files = _size_from_metadata(metadata or {}) or ((native_side, native_side) if native_side else None)
    if from_files:
        width, height = from_files
        why += ", size from the model's files"
    if manifest:
        rec = manifest.get("recommended") or {}
        settings.update({k: rec[k] for k in ("steps", "cfg", "sampler") if k in rec})
        native = manifest.get("native_size")
        if isinstance(native, int) and native > 0:
            width = height = native
        why = f"{manifest.get('name', 'bundled model')}'s own manifest"
    return ModelDefaults(width=_multiple_of_8(width), height=_multiple_of_8(height), steps=int(settings["steps"]),
                         cfg=float(settings["cfg"]), sampler=str(settings["sampler"]), family=family,
                         variant=variant, why=why)


def defaults_for_ref(ref: Any) -> ModelDefaults:
    """The defaults of a resolved pipeline (``models.sources.ModelRef``), reading its small files."""
    path = getattr(ref, "path", None)
    hub_id = getattr(ref, "id", None)
    manifest = native = metadata = None
    if isinstance(path, Path) and path.is_dir():
        from .bundled import read_manifest

        manifest = read_manifest(path)
        native = _native_side_of_folder(path)
    elif isinstance(path, Path) and path.suffix.lower() == ".safetensors":
        metadata = _safetensors_metadata(path)
    return defaults_for(getattr(ref, "family", None), getattr(ref, "variant", "base") or "base",
                        name=str(getattr(ref, "name", "") or path or hub_id or ""), hub_id=hub_id,
                        manifest=manifest, native_side=native, metadata=metadata)


PRESET_REFERENCE_AREA = 512 * 512  # presets give sizes for SD 1.5


def scaled_size(width: int, height: int, defaults: ModelDefaults) -> tuple[int, int]:
    """A preset's size (written for SD 1.5's 512² area) for this model: the same shape, scaled by
    the model's native area (portrait 512x768 stays on SD 1.5, is 1024x1536 on SDXL)."""
    area = width * height * defaults.width * defaults.height / PRESET_REFERENCE_AREA
    aspect = width / height
    step = 64 if min(defaults.width, defaults.height) >= 512 else 8  # SD sizes come in 64s
    w = math.sqrt(area * aspect)
    return max(64, int(round(w / step)) * step), max(64, int(round(w / aspect / step)) * step)


# ---- what the model's own files say ----------------------------------------------------------


def _multiple_of_8(value: float) -> int:
    return max(8, int(round(value / 8.0)) * 8)


def _size_from_metadata(metadata: dict[str, str]) -> tuple[int, int] | None:
    """``modelspec.resolution`` ("1024x1024"), the Stability model-spec key in safetensors headers."""
    raw = metadata.get("modelspec.resolution", "")
    parts = raw.lower().replace(" ", "").split("x")
    if len(parts) == 2 and all(p.isdigit() and 64 <= int(p) <= 4096 for p in parts):
        return int(parts[0]), int(parts[1])
    return None


def _native_side_of_folder(folder: Path) -> int | None:
    """A diffusers pipeline's UNet sample_size times the VAE's scale factor."""
    try:
        unet = json.loads((folder / "unet" / "config.json").read_text("utf-8"))
        vae = json.loads((folder / "vae" / "config.json").read_text("utf-8"))
    except (OSError, ValueError):
        return None
    sample = unet.get("sample_size")
    blocks = vae.get("block_out_channels")
    if not isinstance(sample, int) or not isinstance(blocks, list) or not blocks:
        return None
    side = sample * 2 ** (len(blocks) - 1)
    return side if 64 <= side <= 4096 else None


def _safetensors_metadata(path: Path) -> dict[str, str] | None:
    try:
        from .family import read_safetensors_header

        return read_safetensors_header(path).metadata
    except Exception:  # a broken file is reported by resolution/loading, by name
        return None
