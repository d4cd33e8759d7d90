"""Regions in the plan (torch-free): which steps each region acts on, and which part of the
recipe's picture a plan's picture is (an inpaint crop), so the executor (``engine/regions.py``)
only carries it out. ``plan.py`` attaches a ``RegionsPlan`` to every Plan of a Recipe with regions.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, is_dataclass, replace
from typing import Any

from ..errors import InputImageError, RecipeError
from ..recipe import Recipe, extract_lora_tags

ASPECT_TOLERANCE = 0.01  # a mask whose proportions differ by more than this is refused, not stretched


@dataclass(frozen=True)
class RegionPlan:
    """One region as it will act: its weight and the steps (0-based, of the plan's own denoising
    run) it acts on, by the same rule as a ControlNet's start/end (``plan.control_steps``)."""

    index: int  # in Recipe.regions
    prompt: str
    weight: float
    start: float
    end: float
    own_negative: bool  # the region has its own negative prompt (else the recipe's is used)
    steps: tuple[int, ...]


@dataclass(frozen=True)
class RegionsPlan:
    """The regions of one Plan. ``window``: (x, y, width, height) of the recipe's picture that this
    plan's picture is (an inpaint crop; it may wrap on seamless axes); None: the whole picture,
    possibly scaled (the tiled txt2img base pass)."""

    items: tuple[RegionPlan, ...]
    window: tuple[int, int, int, int] | None = None

    def to_dict(self) -> dict[str, Any]:
        return {"items": [dict(r.__dict__, steps=list(r.steps)) for r in self.items],
                "window": list(self.window) if self.window is not None else None}


MAX_LORAS_WITH_REGIONS = 8  # adapters.MAX_LOADED_LORAS: every LoRA of a job stays loaded while it runs


def refuse_unsupported(recipe: Recipe) -> None:
    """Raise RecipeError for what regions cannot do (before any model loads): more different LoRAs
    in the recipe and its regions together than stay loaded at once."""
    names = {lora.name for lora in recipe.loras} | {lora.name for r in recipe.regions for lora in r.loras}
    if len(names) > MAX_LORAS_WITH_REGIONS and any(r.loras for r in recipe.regions):
        where = next(f"regions[{i}].loras" for i, r in enumerate(recipe.regions) if r.loras)
        raise RecipeError(where, f"{len(names)} different LoRAs in the recipe and its regions; at most "
                          f"{MAX_LORAS_WITH_REGIONS} (they all stay loaded while the job runs)")


def region_lora_tags(recipe: Recipe) -> dict[str, Any]:
    """Recipe changes moving ``<lora:name:weight>`` tags in a region's prompt to that region's
    ``loras`` (as ``Studio.prepare`` does for the recipe's prompt); {} when there are none."""
    regions, moved = [], False
    for region in recipe.regions:
        data = asdict(region) if is_dataclass(region) else region
        if isinstance(data, dict) and isinstance(data.get("prompt"), str):
            prompt, tagged = extract_lora_tags(data["prompt"])
            if tagged:
                data = {**data, "prompt": prompt, "loras": [*data.get("loras", []), *map(asdict, tagged)]}
                moved = True
        regions.append(data)
    return {"regions": regions} if moved else {}


def check_mask_proportions(mask_size: tuple[int, int], size: tuple[int, int], what: str) -> None:
    """A region mask is resized to the picture, never stretched: other proportions (beyond
    ASPECT_TOLERANCE) are an InputImageError (the region would land somewhere else)."""
    (mw, mh), (width, height) = mask_size, size
    if abs(mw * height - mh * width) > ASPECT_TOLERANCE * width * height:
        raise InputImageError(f"{what}: is {mw}x{mh} but the picture is {width}x{height}; a region "
                              "mask must have the picture's proportions (it is resized, never stretched)")


def plan_regions(recipe: Recipe, run: int) -> RegionsPlan | None:
    """The regions of a plan whose denoising run takes ``run`` steps; None without regions."""
    if not recipe.regions:
        return None
    refuse_unsupported(recipe)
    from .plan import control_steps  # plan.py imports this module: import at call time

    return RegionsPlan(items=tuple(
        RegionPlan(index=i, prompt=r.prompt, weight=float(r.weight), start=float(r.start), end=float(r.end),
                   own_negative=bool(r.negative_prompt.strip()),
                   steps=control_steps(float(r.start), float(r.end), run) if r.weight else ())
        for i, r in enumerate(recipe.regions)))


def in_window(regions: RegionsPlan | None, x: int, y: int, width: int, height: int) -> RegionsPlan | None:
    """The same regions for a plan whose picture is the (x, y, width, height) part of the recipe's."""
    return None if regions is None else replace(regions, window=(x, y, width, height))


def describe_regions(regions: RegionsPlan | None, run: int, indent: str = "") -> list[str]:
    """Lines for ``brushwork plan``."""
    if regions is None:
        return []
    lines = []
    for r in regions.items:
        prompt = r.prompt if len(r.prompt) <= 40 else r.prompt[:37] + "..."
        lines.append(f"{indent}region {r.index} {prompt!r}: weight {r.weight:g}, steps {r.start:g}-{r.end:g} -> "
                     f"acts on steps {list(r.steps)} of {run}" + ("    own negative prompt" if r.own_negative else ""))
    if regions.window is not None:
        x, y, w, h = regions.window
        lines.append(f"{indent}region masks: the {w}x{h} part at ({x}, {y})")
    return lines
