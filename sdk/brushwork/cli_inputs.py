"""How a ``brushwork generate`` command line becomes a checked Recipe (no torch here).

Parsing the repeatable options (``--control KIND=IMG[:STRENGTH]``, ``--controlnet``,
``--preprocess``, ``--lora``), raw signals from files (OpenPose ``.json``, depth ``.npy``), and the
checks that run *before* any model loads, so bad input fails in a second: every input image is
opened, the mask's size compared with the init image's, the model resolved (missing models and
pickle checkpoints are refused here).
"""

from __future__ import annotations

import argparse
import json
import os
import re
import tempfile
from dataclasses import dataclass
from dataclasses import field as dc_field
from pathlib import Path

from .errors import InputImageError, PresetError
from .recipe import CONTROL_KINDS, Recipe, is_content_ref, parse_lora_spec


class UsageError(Exception):
    """A command-line mistake: printed as one line, exit 2."""


def recipe_from_args(args: argparse.Namespace) -> Recipe:
    """The Recipe a ``generate`` command line means (validated; no file is read here)."""
    fields: dict = {"prompt": args.prompt}
    for arg, name in (("negative", "negative_prompt"), ("model", "model"), ("vae", "vae"), ("steps", "steps"),
                      ("cfg", "cfg"), ("sampler", "sampler"), ("seed", "seed"), ("batch", "batch"),
                      ("init", "init_image"), ("strength", "strength"), ("mask", "mask"),
                      ("mask_grow", "mask_grow"), ("mask_feather", "mask_feather"), ("tile", "tiling")):
        value = getattr(args, arg)
        if value is not None:
            fields[name] = value
    if args.strength is not None and args.init is None:
        raise UsageError("--strength needs --init (the picture to change)")
    if args.size is not None:
        match = re.fullmatch(r"\s*(\d+)\s*[xX×]\s*(\d+)\s*", args.size)
        if not match:
            raise UsageError(f"--size: expected WxH such as 512x768, got {args.size!r}")
        fields["width"], fields["height"] = int(match.group(1)), int(match.group(2))
    for name in ("model", "vae"):
        if name in fields:
            fields[name] = _absolute_if_path(fields[name])
    if args.lora:
        fields["loras"] = [parse_lora_spec(spec, where=f"--lora {spec}") for spec in args.lora]
        for lora in fields["loras"]:
            lora.name = _absolute_if_path(lora.name)
    controls = [_parse_control(spec) for spec in args.control]
    for option, key in (("--controlnet", "model"), ("--preprocess", "preprocess")):
        for spec in getattr(args, option.lstrip("-")):
            kind, value = _kind_value(option, spec)
            matching = [c for c in controls if c["kind"] == kind]
            if not matching:
                raise UsageError(f"{option} {spec}: there is no --control {kind}=IMG for it to apply to")
            for c in matching:
                c[key] = _absolute_if_path(value) if key == "model" else value
    for c in controls:
        if c.get("image"):
            _signal_from_file(c)
    if controls:
        fields["controls"] = controls
    regions = [_parse_region(mask, prompt) for mask, prompt in getattr(args, "region", None) or []]
    if regions:
        fields["regions"] = regions
    references = [_parse_reference(spec, getattr(args, "reference_model", None))
                  for spec in getattr(args, "reference", None) or []]
    if references:
        fields["references"] = references
    elif getattr(args, "reference_model", None):
        raise UsageError("--reference-model needs a --reference IMG for it to apply to")
    if args.preset:
        from .presets import recipe_from_preset

        return recipe_from_preset(args.preset, **fields)
    return Recipe.from_dict(fields).validate()


def _signal_from_file(control: dict) -> None:
    """``--control pose=people.json`` (OpenPose JSON) and ``--control depth=z.npy`` (raw float
    distances) become raw signals, rendered by the engine, instead of pictures."""
    image = control["image"]
    if control["kind"] == "pose" and image.lower().endswith(".json"):
        from .assets import read_ref

        try:
            data = json.loads(read_ref(image))
        except ValueError as exc:
            raise InputImageError(f"--control pose {image}: not valid OpenPose JSON ({exc})") from None
        control["signal"] = data if isinstance(data, dict) else {"people": data}
        del control["image"]
    elif control["kind"] == "depth" and image.lower().endswith(".npy"):
        import numpy as np

        try:
            arr = np.load(Path(image).expanduser(), mmap_mode="r", allow_pickle=False)
        except FileNotFoundError:
            raise InputImageError(f"--control depth {image}: no such file") from None
        except (ValueError, OSError) as exc:
            raise InputImageError(f"--control depth {image}: not a readable .npy array ({exc})") from None
        if arr.ndim != 2:
            raise InputImageError(f"--control depth {image}: expected a 2-D array of distances, got shape {arr.shape}")
        control["signal"] = {"data": image, "format": "npy", "width": int(arr.shape[1]),
                             "height": int(arr.shape[0])}
        del control["image"]


def _absolute_if_path(ref: str) -> str:
    """A model given as a relative path is recorded absolute, so `rerun` works from any folder;
    names and hub ids stay as they are."""
    path = Path(ref).expanduser()
    return str(path.resolve()) if ref and path.exists() else ref


def _kind_value(option: str, spec: str) -> tuple[str, str]:
    kind, sep, value = spec.partition("=")
    kind = kind.strip().lower()
    if not sep or not value:
        raise UsageError(f"{option}: expected KIND=VALUE, got {spec!r}")
    if kind not in CONTROL_KINDS:
        raise UsageError(f"{option}: unknown control kind {kind!r} (kinds: {', '.join(CONTROL_KINDS)})")
    return kind, value


def _parse_control(spec: str) -> dict:
    if spec.strip().lower() == "inpaint":  # the inpaint ControlNet reads --init and --mask
        return {"kind": "inpaint"}
    kind, image = _kind_value("--control", spec)
    control: dict = {"kind": kind, "image": image}
    head, sep, tail = image.rpartition(":")
    if sep and head and not tail.startswith(("/", "\\")):  # C:\x.png keeps its drive letter
        try:
            control["strength"] = float(tail)
            control["image"] = head
        except ValueError:
            pass
    return control


def _parse_region(spec: str, prompt: str) -> dict:
    """``--region MASK[:WEIGHT[:START-END]] PROMPT[ || NEGATIVE]`` (docs/regions.md)."""
    region: dict = {"mask": spec}
    head, sep, tail = spec.rpartition(":")
    if sep and head and re.fullmatch(r"\d*\.?\d+-\d*\.?\d+", tail):
        start, end = tail.split("-")
        region.update(start=float(start), end=float(end))
        spec = head
        head, sep, tail = spec.rpartition(":")
    if sep and head and re.fullmatch(r"\d*\.?\d+", tail):  # C:\x.png keeps its drive letter
        region["weight"] = float(tail)
        spec = head
    region["mask"] = spec
    prompt, _, negative = prompt.partition("||")
    region.update(prompt=prompt.strip(), negative_prompt=negative.strip())
    return region


def _parse_reference(spec: str, model: str | None) -> dict:
    """``--reference IMG[:WEIGHT][:MODE][:START-END]`` (docs/references.md); read from the right, so
    a Windows drive letter (C:\\x.png) stays part of the path."""
    from .recipe import REFERENCE_MODES

    reference: dict = {}
    path = spec
    while True:
        head, sep, tail = path.rpartition(":")
        if not (sep and head):
            break
        if tail in REFERENCE_MODES and "mode" not in reference:
            reference["mode"] = tail
        elif re.fullmatch(r"\d*\.?\d+-\d*\.?\d+", tail) and "start" not in reference:
            start, end = tail.split("-")
            reference.update(start=float(start), end=float(end))
        elif re.fullmatch(r"\d*\.?\d+", tail) and "weight" not in reference:
            reference["weight"] = float(tail)
        else:
            break
        path = head
    reference["image"] = path
    if model:
        reference["model"] = _absolute_if_path(model)
    return reference


def check_inputs(recipe: Recipe) -> None:
    """Open every input file now, so a bad image fails in a second, before any model loads."""
    from .assets import read_ref
    from .conditioning.images import open_image
    from .conditioning.masks import load_mask

    def read(ref: str, what: str) -> bytes:
        if is_content_ref(ref):
            return b""  # the Studio's store checks those
        try:
            return read_ref(ref)
        except InputImageError as exc:
            raise InputImageError(f"{what}: {exc}") from None

    init_size = None
    if recipe.init_image and not is_content_ref(recipe.init_image):
        init = open_image(read(recipe.init_image, "--init"), what=f"--init {recipe.init_image}")
        init_size = init.size
    if recipe.mask and init_size and not is_content_ref(recipe.mask):
        load_mask(read(recipe.mask, "--mask"), init_size, what=f"--mask {recipe.mask}")
    for c in recipe.controls:
        if c.image and not is_content_ref(c.image):
            open_image(read(c.image, f"--control {c.kind}"), what=f"--control {c.kind} {c.image}")
    _check_region_masks(recipe, read)
    for r in recipe.references:
        if r.image and not is_content_ref(r.image):
            open_image(read(r.image, "--reference"), what=f"--reference {r.image}")


def _check_region_masks(recipe: Recipe, read) -> None:
    """Each --region mask opens and has the picture's proportions (when the size is set already)."""
    from .conditioning.images import open_image
    from .engine.regions_plan import check_mask_proportions, refuse_unsupported

    refuse_unsupported(recipe)
    for r in recipe.regions:
        if is_content_ref(r.mask):
            continue
        mask = open_image(read(r.mask, "--region"), what=f"--region {r.mask}")
        if recipe.width and recipe.height:
            check_mask_proportions(mask.size, (int(recipe.width), int(recipe.height)), f"--region {r.mask}")


def _is_demo(ref) -> bool:
    try:
        from .demo import is_demo
    except ImportError:
        return False
    return is_demo(getattr(ref, "location", None))


def input_sources(recipe: Recipe) -> dict[str, str]:
    """sha256 ref → absolute path of each input file, recorded so a rerun can find them again."""
    from .assets import content_ref

    found = {}
    for ref in recipe.image_refs().values():
        if not is_content_ref(ref):
            path = Path(ref).expanduser().resolve()
            try:
                found[content_ref(path.read_bytes())] = str(path)
            except OSError:
                pass
    return found


# ---- the output path: checked before anything loads --------------------------------------------


def output_targets(out: str, count: int) -> list[Path]:
    """The files a run writes for ``--out out``: the same names as ``Result.paths_for`` gives
    (a missing .png suffix added; a batch writes stem-1.png, stem-2.png, ...)."""
    path = Path(out).expanduser()
    if path.suffix.lower() != ".png":
        path = path.with_name(path.name + ".png")
    if count == 1:
        return [path]
    return [path.with_name(f"{path.stem}-{i + 1}{path.suffix}") for i in range(count)]


def check_out_path(out: str, *, count: int = 1, overwrite: bool = False, option: str = "--out") -> Path:
    """Refuse, before any model loads, an output that could not be written or would silently
    replace a file: a folder, a parent that is a file, a place this user cannot write, an
    existing file (unless ``overwrite``)."""
    path = Path(out).expanduser()
    if path.suffix and path.suffix.lower() != ".png":
        raise UsageError(f"{option} {out}: outputs are PNG files (the recipe travels in PNG metadata)")
    if path.is_dir():
        raise UsageError(f"{option} {out}: is a folder; give a file name such as {path / 'image.png'}")
    parent = path.absolute().parent
    existing = parent
    while not existing.exists() and existing != existing.parent:
        existing = existing.parent
    if not existing.is_dir():
        raise UsageError(f"{option} {out}: {existing} is a file, so no folder can be made there")
    if existing == parent:
        _check_writable(parent, out, option)
    elif not os.access(existing, os.W_OK | os.X_OK):
        raise UsageError(f"{option} {out}: cannot create folders in {existing} (permission denied)")
    for target in output_targets(out, count):
        if target.is_dir():
            raise UsageError(f"{option} {out}: {target} is a folder")
        if target.exists() and not overwrite:
            raise UsageError(f"{option} {out}: {target} already exists; pass --overwrite to replace it, "
                             "or choose another name")
    return path


def _check_writable(folder: Path, out: str, option: str) -> None:
    """Try it: permission bits do not tell (root, read-only mounts, ACLs)."""
    try:
        fd, probe = tempfile.mkstemp(prefix=".brushwork-write-check-", dir=folder)
    except OSError as exc:
        raise UsageError(f"{option} {out}: cannot write in {folder} ({exc.strerror or exc})") from None
    os.close(fd)
    os.unlink(probe)


# ---- models: every one the recipe names, and the defaults the model brings --------------------------


@dataclass
class Plan:
    """What the checks found: the recipe to run (model defaults applied) and notes for stderr."""

    recipe: Recipe
    defaults: object | None = None  # models.defaults.ModelDefaults of the model that will run
    notes: list[str] = dc_field(default_factory=list)


def explicit_fields(args: argparse.Namespace) -> set[str]:
    """The defaulted Recipe fields this command line sets itself."""
    given = {name for arg, name in (("steps", "steps"), ("cfg", "cfg"), ("sampler", "sampler"))
             if getattr(args, arg, None) is not None}
    if getattr(args, "size", None) is not None:
        given |= {"width", "height"}
    return given


def plan_run(recipe: Recipe, explicit: set[str], preset=None) -> Plan:
    """Resolve every model the recipe names (no torch, no loading), apply the model's defaults to
    the fields nobody set, and check the preset's needs. Raises one-line errors."""
    try:
        from .models import defaults as model_defaults
        from .models import settings as model_settings
        from .models import sources
    except ImportError:
        return Plan(recipe)  # no models layer: the engine reports it
    config = model_settings.Settings.load()
    ref = sources.resolve(recipe.model or None, "pipeline", config, allow_paths=True)
    demo = _is_demo(ref)
    plan = Plan(recipe)
    if not recipe.model and demo:
        plan.notes.append("no model set, so this runs on the bundled demo model: a 64x64 toy that knows a few "
                          "patterns and colours (docs/demo.md). For real work pass --model or set "
                          "BRUSHWORK_DEFAULT_MODEL (docs/models.md).")
    defaults = model_defaults.defaults_for_ref(ref)
    plan.defaults = defaults
    chosen = set(explicit)
    fields = recipe.to_dict()
    if preset is not None:
        chosen |= _preset_choices(preset, fields, defaults, demo, ref, plan.notes)
    # What nobody chose is left to the model and filled as the Studio fills it (Recipe.with_defaults).
    fields.update(dict.fromkeys(set(model_defaults.DEFAULTED_FIELDS) - chosen))
    plan.recipe = Recipe.from_dict(fields).with_defaults(defaults.as_fields()).validate()
    _check_components(plan.recipe, ref, demo, config, sources)
    if preset is not None:
        _check_preset_needs(preset, plan.recipe, ref, demo)
    return plan


def _preset_choices(preset, fields: dict, defaults, demo: bool, ref, notes: list[str]) -> set[str]:
    """Which of the preset's sampling fields stand on this model.

    Presets are written for full-step SD models. On the demo and on few-step models (Turbo, LCM,
    Lightning) their steps/CFG/sampler would wreck the picture, so the model's own win (with a
    note); a preset that needs a few-step model gets the model's own settings on a full-step one
    (LCM sampling on a non-LCM model is noise). A preset's size keeps its shape, at the model's
    native area."""
    from .models.defaults import scaled_size

    given = {k for k in preset.fields if k in ("steps", "cfg", "sampler", "width", "height")}
    needs_few = bool(preset.needs.get("few_step"))
    name = getattr(ref, "name", "") or str(getattr(ref, "location", ""))
    keep = set(given)
    lcm_lora = any("lcm" in str(lora.get("name", "")).lower() for lora in fields.get("loras", []))
    if needs_few and not defaults.few_step and not lcm_lora:
        keep -= {"steps", "cfg", "sampler"}
        notes.append(f"preset {preset.name} is made for a few-step model (LCM, Turbo, Lightning); {name} is not "
                     f"one, so it runs with its own settings ({defaults.steps} steps, CFG {defaults.cfg:g}, "
                     f"{defaults.sampler}): slower, but a real picture")
    elif (demo or defaults.few_step) and not needs_few and given & {"steps", "cfg", "sampler"}:
        keep -= {"steps", "cfg", "sampler"}
        what = "the demo model" if demo else f"{name} (a few-step model)"
        notes.append(f"preset {preset.name}: its sampling settings are for full-size SD models; {what} runs "
                     f"with its own ({defaults.steps} steps, CFG {defaults.cfg:g}, {defaults.sampler})")
    if {"width", "height"} <= given:
        w, h = int(preset.fields["width"]), int(preset.fields["height"])
        fields["width"], fields["height"] = scaled_size(w, h, defaults)
    return keep


def _check_components(recipe: Recipe, ref, demo: bool, config, sources) -> None:
    """Every VAE, LoRA, embedding and ControlNet the recipe names must be found now."""
    family = getattr(ref, "family", None)
    if recipe.vae:
        sources.resolve(recipe.vae, "vae", config, allow_paths=True)
    for lora in recipe.loras:
        sources.resolve(lora.name, "lora", config, allow_paths=True, family=family)
    _check_region_loras(recipe, family, config, sources)
    for emb in recipe.embeddings:
        sources.resolve(emb.name, "embedding", config, allow_paths=True, family=family)
    for control in recipe.controls:
        if control.model:
            sources.resolve(control.model, "controlnet", config, allow_paths=True, family=family)
        elif demo:
            from .models.bundled import CONTROLNET_SUBDIRS, controlnet_dir

            if controlnet_dir(control.kind) is None:
                have = ", ".join(sorted(CONTROLNET_SUBDIRS)) or "none"
                raise InputImageError(
                    f"--control {control.kind}: the demo model has no {control.kind} ControlNet (it has: {have}); "
                    f"pass a model that has one with --model and --controlnet {control.kind}=ID_OR_PATH")
        else:
            sources.resolve(control.kind, "controlnet", config, allow_paths=False, family=family)


def _check_region_loras(recipe: Recipe, family, config, sources) -> None:
    """Each region's LoRAs (``Region.loras`` and ``<lora:>`` tags in its prompt, which the Studio
    moves there) found now, the error naming the region's mask."""
    from .errors import ModelNotFoundError
    from .recipe import extract_lora_tags

    for region in recipe.regions:
        for lora in [*region.loras, *extract_lora_tags(region.prompt)[1]]:
            try:
                sources.resolve(lora.name, "lora", config, allow_paths=True, family=family)
            except ModelNotFoundError as exc:
                raise ModelNotFoundError(f"--region {region.mask}: {exc}") from None


def _check_preset_needs(preset, recipe: Recipe, ref, demo: bool) -> None:
    needs = preset.needs
    family = getattr(ref, "family", None)
    families = needs.get("family") or []
    name = getattr(ref, "name", "") or str(getattr(ref, "location", ""))
    if families and family not in families:
        raise PresetError(f"preset {preset.name} needs a {' or '.join(families)} model; {name} is "
                          f"{family or 'of an unknown family'}")
    kinds = needs.get("control") or []
    if kinds and not any(c.kind in kinds for c in recipe.controls):
        options = " or ".join(f"--control {k}=IMG" for k in kinds)
        extra = ""
        if demo:
            extra = " (the demo model has no such ControlNet: use a real SD model, or --preset texture-seamless)"
        raise PresetError(f"preset {preset.name} needs its control picture: give {options}{extra}")
