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
import re
import sys
from pathlib import Path

from .errors import InputImageError
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


def check_models(recipe: Recipe) -> None:
    """Resolve the model (and VAE) now, without torch: a missing model or a refused pickle
    fails in a second instead of after the engine has loaded."""
    try:
        from .models import settings as model_settings
        from .models import sources
    except ImportError:
        return  # no models layer: the engine reports it
    config = model_settings.Settings.load()
    ref = sources.resolve(recipe.model or None, "pipeline", config, allow_paths=True)
    if not recipe.model and _is_demo(ref):
        print("brushwork: no model set, so this runs on the bundled demo model: a 64x64 toy that knows "
              "a few patterns and colours (docs/demo.md). For real work pass --model or set "
              "BRUSHWORK_DEFAULT_MODEL (docs/models.md).", file=sys.stderr)
    if recipe.vae:
        sources.resolve(recipe.vae, "vae", config, allow_paths=True)


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
