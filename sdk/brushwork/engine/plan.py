"""How a Recipe will run, decided in one place: ``plan(recipe, facts) -> Plan``.

A pure function of the Recipe and a few facts about the model (``ModelFacts``: family, native size,
VAE scale, UNet input channels), with no torch and no pictures, so ``brushwork plan`` can print it
before a model loads, tests can check it in microseconds, and the executor (``studio.py``,
``run.py``, ``tiled.py``, ``tiled_inpaint.py``) only carries it out:

- ``task``: what the Recipe asks (txt2img / img2img / inpaint) and ``pipeline_task``: the diffusers
  pipeline that runs it. A 9-channel inpainting checkpoint always runs the inpaint pipeline:
  txt2img and img2img become inpainting of the whole picture (``whole_picture_mask``; txt2img from a
  grey picture at strength 1, as A1111 does).
- ``path``: ``plain`` (the pipeline on the whole picture), ``tiled`` (txt2img / img2img larger than
  ``TILED_FACTOR`` tiles on a side: base pass, tiled encode / denoise / decode) or
  ``cropped_inpaint`` (a large inpaint: a crop around the mask runs as its own ``sub`` Plan, plain
  or tiled, and is pasted back).
- ``strength``: the one denoising strength (None: from noise), ``denoise_steps`` the steps it runs,
  ``seamless_axes``, the tile and its grid, the control step ranges, the progress total.

Sub-jobs (the tiled txt2img base pass, an inpaint crop) are Plans of their own (``Plan.sub``):
nothing edits a copy of the Recipe to steer them. The crop needs the mask's extent, which only the
executor can read; it passes it in as ``mask_spans`` (rows, cols) from ``tiled_inpaint.span``.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from typing import Any

from ..errors import RecipeError
from ..recipe import Recipe
from .regions_plan import RegionsPlan, in_window, plan_regions

TILED_FACTOR = 2  # a side larger than this many tiles takes the tiled path
REFINE_STRENGTH = 0.35  # how much of the upscaled picture the tiled txt2img refine may repaint
# A tile is the model's native size, but never under this many latent pixels: SD's UNet halves a
# tile three times, so an 8-pixel tile is 1x1 at the bottom (no context), and each tile call pays a
# fixed overhead (the 64 px demo model took 25x longer at 512² in 121 tiles than in one piece).
MIN_TILE_LATENT = 32
OVERLAP_FRACTION = 4  # tiles overlap by 1/4 of their side
MULTIPLE = 8  # diffusers pipelines want sides in multiples of 8

PATHS = ("plain", "tiled", "cropped_inpaint", "upscale")  # upscale: task upscale, no diffusion (upscale_plan.py)


# ---- facts about the model ---------------------------------------------------------------------


@dataclass(frozen=True)
class ModelFacts:
    """What the planner needs to know about a model (read from its configs, no weights)."""

    family: str = "sd15"
    sample_size: int = 64  # the UNet's latent side at its training size
    vae_scale: int = 8  # pixels per latent pixel
    unet_channels: int = 4  # 9: a dedicated inpainting checkpoint (latent + mask + masked picture)

    @property
    def native(self) -> int:
        """Pixels per side the model was trained at."""
        return self.sample_size * self.vae_scale

    @property
    def tile(self) -> int:
        """Pixels per side of a tile: the native size, at least MIN_TILE_LATENT latent pixels."""
        return max(self.native, MIN_TILE_LATENT * self.vae_scale)

    @property
    def nine_channels(self) -> bool:
        return self.unet_channels == 9

    @classmethod
    def from_configs(cls, family: str, unet: dict, vae: dict | None = None) -> ModelFacts:
        """From a UNet config and a VAE config (diffusers' config.json contents)."""
        sample = unet.get("sample_size", 64)
        sample = sample[0] if isinstance(sample, (list, tuple)) else sample
        scale = 2 ** (len(vae.get("block_out_channels", (0,) * 4)) - 1) if vae else 8
        return cls(family=family, sample_size=int(sample), vae_scale=int(scale),
                   unet_channels=int(unet.get("in_channels", 4)))

    @classmethod
    def of_pipe(cls, pipe: Any, family: str) -> ModelFacts:
        """From a loaded pipeline (its configs only)."""
        sample = pipe.unet.config.get("sample_size", 64)
        sample = sample[0] if isinstance(sample, (list, tuple)) else sample
        return cls(family=family, sample_size=int(sample), vae_scale=int(getattr(pipe, "vae_scale_factor", 8)),
                   unet_channels=int(pipe.unet.config.get("in_channels", 4)))

    @classmethod
    def for_family(cls, family: str, *, nine_channels: bool = False) -> ModelFacts:
        """The published shapes: SD 1.5 trains at 512 px, SDXL at 1024 px, both with an 8x VAE."""
        return cls(family=family, sample_size=128 if family == "sdxl" else 64, vae_scale=8,
                   unet_channels=9 if nine_channels else 4)


# ---- pure arithmetic the executor shares --------------------------------------------------------


def denoise_steps(steps: int, strength: float) -> int:
    """Denoising steps an img2img run of ``steps`` at ``strength`` takes (diffusers' count)."""
    return max(1, min(steps, int(steps * strength)))


def refine_steps(steps: int) -> int:
    return denoise_steps(steps, REFINE_STRENGTH)


def total_steps(steps: int, strength: float | None = None) -> int:
    """Progress total of a tiled job: txt2img (``strength`` None): base + refine + encode +
    decode; img2img: the denoising steps + encode + decode."""
    if strength is None:
        return steps + refine_steps(steps) + 2
    return denoise_steps(steps, strength) + 2


def wants_tiled(width: int, height: int, tile: int) -> bool:
    """Larger than TILED_FACTOR tiles on a side."""
    return max(width, height) > TILED_FACTOR * tile


def base_size(width: int, height: int, native: int, multiple: int = MULTIPLE) -> tuple[int, int]:
    """The tiled txt2img base pass's size: the long side at native, the same aspect, multiples of
    ``multiple``."""
    scale = native / max(width, height)
    w, h = (max(multiple, int(round(side * scale / multiple)) * multiple) for side in (width, height))
    return w, h


def tile_starts(length: int, tile: int, overlap: int, wrap: bool) -> tuple[int, list[int]]:
    """(tile size, starts) covering ``length``; on a wrap axis tiles may run past the end and
    continue at the start. A wrap axis no longer than a tile gets two copies shifted by half, so
    neither copy's border lands unblended on any place (the edge included)."""
    if length <= tile:
        return length, ([0, length // 2] if wrap and length > 1 else [0])
    stride = max(1, tile - overlap)
    if wrap:
        n = math.ceil(length / stride)
        return tile, [round(i * length / n) for i in range(n)]
    n = math.ceil((length - tile) / stride) + 1
    return tile, [round(i * (length - tile) / (n - 1)) for i in range(n)]


def tile_grid(height: int, width: int, tile: int, axes: str) -> tuple[int, int]:
    """(rows, cols) of tiles over a latent of height x width with ``tile``-pixel tiles."""
    overlap = max(1, tile // OVERLAP_FRACTION)
    return (len(tile_starts(height, tile, overlap, "y" in axes)[1]),
            len(tile_starts(width, tile, overlap, "x" in axes)[1]))


def control_steps(start: float, end: float, run: int) -> tuple[int, ...]:
    """The steps (0-based, of a run of ``run`` denoising steps) a ControlNet acts on: diffusers'
    ``controlnet_keep``, step i when [i/n, (i+1)/n] lies inside [start, end]."""
    return tuple(i for i in range(run) if not (i / run < start or (i + 1) / run > end))


def crop_window(start: int, length: int, full: int, context: int, least: int, wrap: bool) -> tuple[int, int]:
    """(start, size) of an inpaint crop on one axis: ``length`` from ``start`` grown by ``context``
    on each side, at least ``least``, a multiple of MULTIPLE, kept inside [0, full) unless ``wrap``."""
    size = max(length + 2 * context, least)
    size = min(full, -(-size // MULTIPLE) * MULTIPLE)  # full itself is a multiple of 8
    begin = start + length // 2 - size // 2  # centred on the masked run
    if size == full:
        return 0, full
    if wrap:
        return begin % full, size
    return min(max(0, begin), full - size), size


# ---- the plan -----------------------------------------------------------------------------------


@dataclass(frozen=True)
class ControlPlan:
    """One ControlNet as it will act: its strength and the steps of each denoising run it acts on."""

    kind: str
    strength: float
    start: float
    end: float
    steps: tuple[int, ...]  # of the main denoising run (the tiled txt2img: of its refine run)


@dataclass(frozen=True)
class ReferencePlan:
    """One reference image as it will act (engine/references.py): its IP-Adapter's scale, the
    blocks its mode names, and the steps of the run it acts on (the ControlNet rule,
    ``control_steps``; outside them its scale is 0)."""

    mode: str
    weight: float
    start: float
    end: float
    model: str  # the adapter asked for ("" = the family's default)
    steps: tuple[int, ...]


def _references(recipe: Recipe, run: int) -> tuple[ReferencePlan, ...]:
    return tuple(ReferencePlan(mode=r.mode, weight=float(r.weight), start=float(r.start), end=float(r.end),
                               model=r.model, steps=control_steps(float(r.start), float(r.end), run))
                 for r in recipe.references)


@dataclass(frozen=True)
class Crop:
    """Where an inpaint crop sits in the full picture (it may wrap on ``axes``' seamless axes)."""

    x: int
    y: int
    width: int
    height: int
    axes: str  # the seamless axes the crop itself keeps: those it spans whole


@dataclass(frozen=True)
class Plan:
    """Everything about how one Recipe runs (see the module doc). Frozen: executors read it."""

    task: str  # what the Recipe asks: txt2img, img2img or inpaint
    pipeline_task: str  # the diffusers pipeline that runs: txt2img, img2img or inpaint
    path: str  # plain, tiled or cropped_inpaint
    family: str
    width: int
    height: int
    steps: int
    sampler: str
    cfg: float
    seeds: tuple[int, ...]  # one per batch image: seed, seed + 1, ...
    strength: float | None  # the denoising strength; None: a txt2img run from noise
    denoise_steps: int  # the steps the main denoising run takes
    seamless_axes: str  # "", "x", "y", "xy"
    whole_picture_mask: bool  # 9-channel checkpoint, no mask asked: inpaint the whole picture
    grey_init: bool  # ... and no init picture either: start from a grey one (strength 1)
    vae_scale: int
    tile: int  # pixels per tile side (tiled phases, crop sizes)
    tile_grid: tuple[int, int]  # (rows, cols) of tiles per tiled phase; (1, 1) on the plain path
    start: str  # where denoising starts: noise, init (the init picture) or base (a base pass, upscaled)
    refine_seed_offset: int  # the tiled denoise's noise seed is image seed + this (1 after a base pass)
    unet_extra: bool  # tiles carry the 9-channel UNet's mask + masked-picture channels
    keep_outside: bool  # a 4-channel inpaint in tiles: outside the mask reset to the init every step
    paste_back: bool  # the result is pasted into the init picture through the mask
    mask_feather: int
    controls: tuple[ControlPlan, ...]
    progress_total: int  # Progress.total of each image
    sub: Plan | None = None  # tiled txt2img: the base pass; cropped inpaint: the crop's own run
    crop: Crop | None = None
    notes: tuple[str, ...] = field(default=())
    upscale: Any = None  # upscale_plan.UpscalePlan: the Recipe's upscale step after the job, or None
    # reference images (IP-Adapters); a tiled refine runs without them (only its base pass has them)
    references: tuple[ReferencePlan, ...] = ()
    regions: RegionsPlan | None = None  # the Recipe's regions as this plan's run applies them (regions_plan.py)

    @property
    def tile_latent(self) -> int:
        return self.tile // self.vae_scale

    @property
    def tiles(self) -> int:
        return self.tile_grid[0] * self.tile_grid[1]

    def to_dict(self) -> dict:
        """Plain data (JSON-safe) for ``brushwork plan --json`` and tests."""
        out: dict[str, Any] = {}
        for name in self.__dataclass_fields__:
            value = getattr(self, name)
            if isinstance(value, (Plan, RegionsPlan)) or (name == "upscale" and value is not None):
                value = value.to_dict()  # sub-plans say themselves
            elif isinstance(value, Crop):
                value = dict(value.__dict__)
            elif name == "controls":
                value = [dict(c.__dict__, steps=list(c.steps)) for c in value]
            elif name == "references":
                value = [dict(r.__dict__, steps=list(r.steps)) for r in value]
            elif isinstance(value, tuple):
                value = list(value)
            out[name] = value
        return out


Spans = tuple[tuple[int, int] | None, tuple[int, int] | None]


def plan(recipe: Recipe, facts: ModelFacts, *, mask_spans: Spans | Callable[[str], Spans] | None = None) -> Plan:
    """The Plan of ``recipe`` on a model with ``facts``.

    ``recipe`` is one its boundary validated and completed (``Studio.prepare``, ``brushwork plan``,
    the CLI; docs/architecture.md): the planner trusts it and checks only that the model's
    defaults are filled (``Recipe.with_defaults``), since it cannot plan without them.

    ``mask_spans``: for a large inpaint, the (start, length) of the masked rows and columns (on a
    seamless axis a span may cross the edge), as ``tiled_inpaint.mask_spans`` reads them off the
    grown mask; (None, None) for an empty mask; or a function of the seamless axes giving them, so
    the mask is read only when the plan needs a crop. Without it a large inpaint's crop is left
    open (``crop`` None: decided when the mask is read)."""
    if recipe.upscale is not None:  # the job, then its upscale step (upscale_plan.py)
        from .upscale_plan import with_upscale

        return with_upscale(recipe, facts, mask_spans, plan)
    width, height, steps, cfg, sampler = _sampling(recipe)
    task = recipe.task
    nine = facts.nine_channels
    pipeline_task = "inpaint" if nine else task
    whole = nine and task != "inpaint"
    grey = whole and task == "txt2img"
    if grey:
        strength: float | None = 1.0
    elif task == "txt2img":
        strength = None
    else:
        strength = float(recipe.strength)
    axes = recipe.tiling or ""
    seed = int(recipe.seed or 0)
    common = dict(task=task, pipeline_task=pipeline_task, family=facts.family, steps=steps,
                  sampler=sampler, cfg=cfg, seeds=tuple(seed + i for i in range(recipe.batch)),
                  whole_picture_mask=whole, grey_init=grey, vae_scale=facts.vae_scale, tile=facts.tile,
                  mask_feather=int(recipe.mask_feather))
    plain = _plain(width, height, strength, axes, recipe, common, paste=task == "inpaint")
    if not wants_tiled(width, height, facts.tile):
        return plain
    if task == "inpaint":
        return _cropped(plain, recipe, facts, mask_spans)
    return _tiled(width, height, strength, axes, recipe, facts, common)


def _sampling(recipe: Recipe) -> tuple[int, int, int, float, str]:
    """(width, height, steps, cfg, sampler): set, since the model's defaults were filled in."""
    if recipe.unset:
        raise RecipeError(recipe.unset[0], "is unset: the model's default is filled in before planning "
                          "(Studio.prepare does it; Recipe.with_defaults)")
    assert recipe.width is not None and recipe.height is not None and recipe.steps is not None
    assert recipe.cfg is not None and recipe.sampler is not None
    return int(recipe.width), int(recipe.height), int(recipe.steps), float(recipe.cfg), recipe.sampler


def _controls(recipe: Recipe, run: int) -> tuple[ControlPlan, ...]:
    return tuple(ControlPlan(kind=c.kind, strength=float(c.strength), start=float(c.start), end=float(c.end),
                             steps=control_steps(float(c.start), float(c.end), run) if c.strength else ())
                 for c in recipe.controls)


def _plain(width: int, height: int, strength: float | None, axes: str, recipe: Recipe, common: dict, *,
           paste: bool) -> Plan:
    run = common["steps"] if strength is None or common["grey_init"] else denoise_steps(common["steps"], strength)
    return Plan(**common, path="plain", width=width, height=height, strength=strength, denoise_steps=run,
                seamless_axes=axes, tile_grid=(1, 1), start="noise" if strength is None else "init",
                refine_seed_offset=0, unet_extra=False, keep_outside=False, paste_back=paste,
                controls=_controls(recipe, run), progress_total=run, references=_references(recipe, run),
                regions=plan_regions(recipe, run))


def _tiled(width: int, height: int, strength: float | None, axes: str, recipe: Recipe, facts: ModelFacts,
           common: dict) -> Plan:
    """txt2img: base pass at native size, upscale, tiled refine; img2img (and a big inpaint crop):
    tiled encode, denoise from ``strength``, decode."""
    steps = common["steps"]
    grid = tile_grid(height // facts.vae_scale, width // facts.vae_scale, facts.tile // facts.vae_scale, axes)
    nine = facts.nine_channels
    from_init = common["task"] != "txt2img"
    if from_init:
        assert strength is not None  # img2img and inpaint always have one
        run, sub, total, offset = denoise_steps(steps, strength), None, total_steps(steps, strength), 0
        refine = strength
    else:
        bw, bh = base_size(width, height, facts.native)
        # the base pass: the ordinary txt2img (a 9-channel checkpoint: its whole-picture inpaint)
        sub = _plain(bw, bh, strength, axes, recipe, common, paste=False)
        run, total, offset, refine = refine_steps(steps), total_steps(steps), 1, REFINE_STRENGTH
    return Plan(**common, path="tiled", width=width, height=height, strength=refine, denoise_steps=run,
                seamless_axes=axes, tile_grid=grid, start="init" if from_init else "base",
                refine_seed_offset=offset, unet_extra=nine,
                keep_outside=common["task"] == "inpaint" and not nine, paste_back=False,
                controls=_controls(recipe, run), progress_total=total, sub=sub,
                notes=_tiled_reference_note(recipe, from_init), regions=plan_regions(recipe, run))


def _tiled_reference_note(recipe: Recipe, from_init: bool) -> tuple[str, ...]:
    """The tiled denoise calls the UNet per tile without IP-Adapters: say where references act."""
    if not recipe.references:
        return ()
    if from_init:
        return ("reference images are not applied on the tiled path (it denoises in tiles without them)",)
    return ("reference images steer the base pass; the tiled refine runs without them",)


def _cropped(whole: Plan, recipe: Recipe, facts: ModelFacts, mask_spans: Spans | Callable[[str], Spans] | None) -> Plan:
    """A large inpaint: a crop around the mask (context: room for the model to see the
    surroundings, more than the feather so the paste's inward feather never reaches the crop's
    border), run as its own plan (plain up to TILED_FACTOR tiles, else the tiled img2img phases)."""
    base = replace(whole, path="cropped_inpaint", paste_back=False, progress_total=0, controls=())
    if mask_spans is None:
        return replace(base, notes=("the crop is decided when the mask is read",))
    axes = whole.seamless_axes
    rows, cols = mask_spans(axes) if callable(mask_spans) else mask_spans
    if rows is None or cols is None:
        return replace(base, notes=("the mask is empty: the init picture is returned untouched",))
    tile = facts.tile
    context = max(tile // 4, int(recipe.mask_feather) + 2)
    y0, h = crop_window(*rows, whole.height, context, tile, "y" in axes)
    x0, w = crop_window(*cols, whole.width, context, tile, "x" in axes)
    # A crop that spans a whole seamless axis is still a torus on that axis; a partial one is not.
    crop_axes = ("x" if "x" in axes and w == whole.width else "") + ("y" if "y" in axes and h == whole.height else "")
    common = {name: getattr(whole, name) for name in ("task", "pipeline_task", "family", "steps", "sampler", "cfg",
                                                       "seeds", "whole_picture_mask", "grey_init", "vae_scale",
                                                       "tile", "mask_feather")}
    if wants_tiled(w, h, tile):
        sub = _tiled(w, h, whole.strength, crop_axes, recipe, facts, common)
    else:
        sub = _plain(w, h, whole.strength, crop_axes, recipe, common, paste=False)
    sub = replace(sub, regions=in_window(sub.regions, x0, y0, w, h))  # region masks: the crop's part of them
    return replace(base, crop=Crop(x=x0, y=y0, width=w, height=h, axes=crop_axes), sub=sub,
                   controls=sub.controls, progress_total=sub.progress_total, denoise_steps=sub.denoise_steps,
                   tile_grid=sub.tile_grid, paste_back=True)
