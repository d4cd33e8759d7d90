"""``brushwork plan RECIPE_OR_PNG``: print how a Recipe will run, before any model loads.

The CLI plugin (registered in ``cli.PLUGIN_MODULES``). Reads a Recipe from a JSON file or from the
``brushwork`` chunk of a PNG, resolves its model without loading it (the model's config files give
the planner its facts), reads the mask's extent for a large inpaint, and prints the Plan with the
estimated time and peak memory for this device (``engine/estimate.py``). Torch is imported only
by ``--calibrate``.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from ..errors import InputImageError
from ..recipe import Recipe
from .plan import ModelFacts, Plan, plan
from .regions_plan import describe_regions


def register(sub) -> None:
    p = sub.add_parser("plan", help="show how a recipe will run (path, tiles, strength, time, memory); loads no model",
                       description="Print the Plan of a recipe (a .json file or a PNG Brushwork made): task and "
                                   "pipeline, plain / tiled / cropped-inpaint path, sizes, tiles, seamless axes, "
                                   "strength, ControlNet step ranges, and the estimated time and peak memory.")
    p.add_argument("source", metavar="RECIPE_OR_PNG", nargs="?", help="a recipe .json or a PNG with a recipe")
    p.add_argument("--model", metavar="ID_OR_PATH", help="plan for this model instead of the recipe's")
    p.add_argument("--device", default=None, help="the device to estimate for (default: the calibrated one, cpu)")
    p.add_argument("--json", action="store_true", help="print the plan and the estimate as one JSON object")
    p.add_argument("--calibrate", action="store_true",
                   help="measure this device on the bundled demo model (about a minute) and save it for estimates")
    p.set_defaults(func=cmd_plan)


def read_recipe(source: str) -> Recipe:
    path = Path(source)
    if not path.is_file():
        raise InputImageError(f"{source}: no such file")
    if path.suffix.lower() == ".png":
        from ..metadata import read_metadata

        meta = read_metadata(path)
        if meta.recipe is None:
            raise InputImageError(f"{source}: has no Brushwork recipe (another tool made it)")
        return meta.recipe
    try:
        return Recipe.from_json(path.read_text(encoding="utf-8"))
    except UnicodeDecodeError:
        raise InputImageError(f"{source}: is neither a PNG nor a recipe .json") from None


def model_facts(recipe: Recipe) -> tuple[ModelFacts, str, int]:
    """(facts, where they came from, UNet bytes on disk or 0), from the model's config files."""
    from ..models import sources

    ref = sources.resolve(recipe.model, "pipeline")
    folder = Path(ref.path) if ref.path is not None else None
    family = ref.family or "sd15"
    if folder is not None and (folder / "unet" / "config.json").is_file():
        unet = json.loads((folder / "unet" / "config.json").read_text())
        vae_file = folder / "vae" / "config.json"
        vae = json.loads(vae_file.read_text()) if vae_file.is_file() else None
        unet_bytes = sum(f.stat().st_size for f in (folder / "unet").glob("*.safetensors"))
        return ModelFacts.from_configs(family, unet, vae), f"{ref.describe()} (its configs)", unet_bytes
    nine = "inpaint" in (ref.name or ref.describe()).lower()
    return ModelFacts.for_family(family, nine_channels=nine), f"{ref.describe()} ({family} defaults)", 0


def mask_extent(recipe: Recipe) -> tuple | None:
    """The grown mask's (rows, cols) spans at the recipe's size, when the mask is a readable file."""
    if not recipe.mask or recipe.mask.startswith("sha256:") or not recipe.init_image:
        return None
    from PIL import Image

    from ..conditioning.images import open_image
    from ..conditioning.masks import grow_mask, load_mask
    from .tiled_inpaint import mask_spans

    original = open_image(Path(recipe.init_image).read_bytes(), what="init_image")
    mask = grow_mask(load_mask(Path(recipe.mask).read_bytes(), original.size, what="mask"), recipe.mask_grow)
    size = recipe.generated_size
    if mask.size != size:
        mask = mask.resize(size, Image.Resampling.NEAREST)
    return mask_spans(mask, recipe.tiling)


def describe(p: Plan, indent: str = "", *, random_seed: bool = False) -> list[str]:
    """The plan as lines; ``random_seed``: the Recipe has no seed yet (one is picked when it runs)."""
    lines = [f"{indent}path: {p.path}    task: {p.task}    pipeline: {p.pipeline_task}"
             + ("    (9-channel checkpoint: inpainting the whole picture"
                + (", from a grey picture)" if p.grey_init else ")") if p.whole_picture_mask else ""),
             f"{indent}size: {p.width}x{p.height}    steps: {p.steps} ({p.sampler}, CFG {p.cfg:g})    "
             f"denoising steps: {p.denoise_steps}" + (f" from strength {p.strength:g}" if p.strength is not None else
                                                       " from noise"),
             f"{indent}seamless axes: {p.seamless_axes or 'none'}    seeds: "
             + ("random, picked when it runs" if random_seed else
                ", ".join(str(s) for s in p.seeds[:4]) + (" ..." if len(p.seeds) > 4 else ""))]
    if p.path == "tiled":
        lines.append(f"{indent}tiles: {p.tile_grid[0]} x {p.tile_grid[1]} of {p.tile} px per phase    "
                     f"start: {p.start}" + (f" (refine noise: seed + {p.refine_seed_offset})"
                                            if p.refine_seed_offset else "")
                     + ("    tiles carry the mask channels" if p.unet_extra else "")
                     + ("    outside the mask kept every step" if p.keep_outside else ""))
    for c in p.controls:
        lines.append(f"{indent}control {c.kind}: strength {c.strength:g}, steps {c.start:g}-{c.end:g} -> "
                     f"acts on steps {list(c.steps)} of {p.denoise_steps}")
    lines += describe_regions(p.regions, p.denoise_steps, indent)
    for r in p.references:
        lines.append(f"{indent}reference ({r.mode}): weight {r.weight:g}, steps {r.start:g}-{r.end:g} -> "
                     f"acts on steps {list(r.steps)} of {p.denoise_steps}; adapter: "
                     + (r.model or "the model family's default (docs/references.md)"))
    if p.crop is not None:
        lines.append(f"{indent}crop: {p.crop.width}x{p.crop.height} at ({p.crop.x}, {p.crop.y})"
                     + (f", seamless {p.crop.axes}" if p.crop.axes else "") + ", pasted back through the mask")
    if p.paste_back and p.crop is None:
        lines.append(f"{indent}pasted back through the mask (feather {p.mask_feather} px)")
    lines.append(f"{indent}progress: {p.progress_total} steps per image")
    lines += [f"{indent}note: {n}" for n in p.notes]
    if p.sub is not None:
        lines.append(f"{indent}{'base pass' if p.path == 'tiled' else 'the crop runs'}:")
        lines += describe(p.sub, indent + "  ", random_seed=random_seed)
    if p.upscale is not None:  # the upscale step after the job (engine/upscale_plan.py)
        lines.append(f"{indent}{p.upscale.describe()}")
        if p.upscale.refine_plan is not None:
            lines.append(f"{indent}the refine runs:")
            lines += describe(p.upscale.refine_plan, indent + "  ", random_seed=random_seed)
    return lines


def cmd_plan(args: argparse.Namespace) -> int:
    if args.calibrate:
        return _calibrate(args.device)
    if not args.source:
        raise InputImageError("plan needs RECIPE_OR_PNG (or --calibrate)")
    recipe = read_recipe(args.source)
    if args.model:
        recipe = recipe.replace(model=args.model)
    # This command's boundary: the model's defaults filled where the recipe leaves them unset, then
    # the one validation (plan() trusts it).
    show(with_model_defaults(recipe).validate(), args.device, as_json=args.json)
    return 0


def with_model_defaults(recipe: Recipe) -> Recipe:
    """``recipe`` with the model's defaults (models/defaults.py) in the fields it leaves unset, as
    the Studio fills them (resolving the model, loading nothing)."""
    if not recipe.unset:
        return recipe
    from ..models import sources
    from ..models.defaults import defaults_for_ref

    return recipe.with_defaults(defaults_for_ref(sources.resolve(recipe.model, "pipeline")).as_fields())


def show(recipe: Recipe, device: str | None = None, *, as_json: bool = False) -> None:
    """Print how ``recipe`` (validated, the model's defaults filled) will run and what it is
    estimated to cost, loading no model (and no torch): ``brushwork plan`` and ``generate --dry-run``."""
    from ..paths import state_dir
    from .estimate import estimate, load_calibration

    facts, facts_from, unet_bytes = model_facts(recipe)
    the_plan = plan(recipe, facts, mask_spans=mask_extent(recipe))
    calibration = load_calibration(state_dir(), device or "cpu")
    cost = estimate(the_plan, calibration, unet_bytes=unet_bytes)
    if as_json:
        print(json.dumps({"plan": the_plan.to_dict(), "model": facts_from, "facts": facts.__dict__,
                          "estimate": cost.__dict__}, indent=2, default=str))
        return
    print(f"model: {facts_from}: native {facts.native} px, tile {facts.tile} px, "
          f"{facts.unet_channels}-channel UNet")
    print("\n".join(describe(the_plan, random_seed=recipe.seed is None)))
    print(f"estimate per image: {cost.describe_time()}, peak {cost.peak_bytes / 2**20:.0f} MiB above the loaded "
          f"model ({cost.basis})")


def _calibrate(device: str | None) -> int:
    from ..paths import state_dir
    from .calibrate import calibrate
    from .estimate import save_calibration

    calibration, rows = calibrate(device or "cpu")
    for row in rows:
        print(json.dumps(row))
    path = save_calibration(state_dir(), calibration)
    print(f"saved {path}: time error {calibration.time_error:.0%}, memory error {calibration.memory_error:.0%} "
          f"(largest relative error on the held-out jobs; each time the least of {calibration.repeats} runs; "
          f"load {calibration.load:.1f} per core)")
    return 0
