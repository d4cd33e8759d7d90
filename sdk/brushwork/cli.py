"""The ``brushwork`` command line.

    brushwork generate PROMPT --out PATH [options]   run one Recipe in-process
    brushwork info IMG                               what a PNG says about how it was made
    brushwork rerun IMG --out OUT                    reproduce an image pixel for pixel
    brushwork presets                                the named presets
    brushwork estimators                             optional preprocessors and their licences
(+ commands other modules register: models, worker, history, blender, demo.)

Promises scripts rely on: progress goes to stderr, output paths to stdout; exit 0 on success,
2 with ONE line ``brushwork: error: ...`` on bad input (usage, recipe, images, presets, models),
1 with one line on runtime failures; never a traceback (``BRUSHWORK_DEBUG=1`` shows one); a
failed run leaves no output file. Startup imports no torch: heavy modules load inside the
command that needs them, so ``brushwork --help`` is instant.
"""

from __future__ import annotations

import argparse
import importlib
import json
import os
import sys
from pathlib import Path

from .cli_inputs import (
    UsageError,
    check_inputs,
    check_out_path,
    explicit_fields,
    input_sources,
    plan_run,
    recipe_from_args,
)
from .errors import BrushworkError, InputImageError, ModelNotFoundError, PresetError, RecipeError, UnsafeCheckpointError
from .recipe import CONTROL_KINDS, SAMPLERS, Recipe, is_content_ref

PLUGIN_MODULES = ("brushwork.models.commands", "brushwork.worker.commands", "brushwork.addon_package",
                  "brushwork.demo.commands", "brushwork.batch.commands", "brushwork.engine.plan_command",
                  "brushwork.upscale_command")
# Bad input: the user can fix it by changing the command line or the files it names.
INPUT_ERRORS = (RecipeError, PresetError, InputImageError, ModelNotFoundError, UnsafeCheckpointError)


class _Parser(argparse.ArgumentParser):
    def error(self, message: str):  # argparse would print the whole usage first: one line only
        raise UsageError(message)


def build_parser() -> argparse.ArgumentParser:
    from . import __version__

    parser = _Parser(prog="brushwork", description="Stable Diffusion for artists' own tools.")
    parser.add_argument("--version", action="version", version=f"brushwork {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    sub.required = True
    _add_generate(sub)
    info = sub.add_parser("info", help="show the recipe, hashes and A1111 parameters a PNG carries")
    info.add_argument("image", metavar="IMG")
    info.add_argument("--json", action="store_true", help="print everything as one JSON object")
    info.set_defaults(func=cmd_info)
    rerun = sub.add_parser("rerun", help="reproduce an image from the recipe in its PNG (same model, same device)")
    rerun.add_argument("image", metavar="IMG")
    rerun.add_argument("--out", required=True, metavar="OUT", help="where to write the new PNG")
    rerun.add_argument("--overwrite", action="store_true", help="replace OUT if it exists (default: refuse)")
    rerun.add_argument("--model", metavar="ID_OR_PATH",
                       help="the model to use when IMG's recipe does not record one (older images)")
    rerun.add_argument("--device", default=None, help="cuda, cpu or mps (default: the best available)")
    rerun.set_defaults(func=cmd_rerun)
    presets = sub.add_parser("presets", help="list the named presets (bundled and your own)")
    presets.add_argument("--json", action="store_true", help="one JSON object per preset")
    presets.set_defaults(func=cmd_presets)
    est = sub.add_parser("estimators", help="list the optional preprocessors and their licences")
    est.set_defaults(func=cmd_estimators)
    for name in PLUGIN_MODULES:
        module = _import_plugin(name)
        if module is not None and hasattr(module, "register"):
            module.register(sub)
    return parser


def _import_plugin(name: str):
    """Other parts add their commands; a module that is not there (yet) is skipped silently."""
    try:
        return importlib.import_module(name)
    except ModuleNotFoundError as exc:
        if exc.name and (name == exc.name or name.startswith(exc.name + ".")):
            return None
        _debug(f"skipping {name}: {exc}")
        return None
    except Exception as exc:  # a broken plugin must not take the whole CLI down
        _debug(f"skipping {name}: {type(exc).__name__}: {exc}")
        return None


def _add_generate(sub) -> None:
    g = sub.add_parser("generate", help="generate images from a prompt (txt2img, img2img, inpaint, ControlNet)",
                       description="Run one recipe in-process. With --batch N the outputs are OUT's stem plus "
                                   "-1, -2, ...",
                       epilog=_DEFAULTS_HELP, formatter_class=argparse.RawDescriptionHelpFormatter)
    g.add_argument("prompt", metavar="PROMPT")
    g.add_argument("--out", required=True, metavar="PATH",
                   help="output PNG (metadata embedded); an existing file is refused unless --overwrite")
    g.add_argument("--overwrite", action="store_true", help="replace existing output files")
    g.add_argument("--dry-run", action="store_true",
                   help="print how the job would run (the plan, estimated time and memory) and stop: no model loads")
    g.add_argument("--negative", metavar="TEXT", help="negative prompt")
    g.add_argument("--preset", metavar="P", help="start from a named preset (see `brushwork presets`)")
    g.add_argument("--model", metavar="ID_OR_PATH", help="hub id, folder, .safetensors file or model name")
    g.add_argument("--vae", metavar="ID_OR_PATH", help="a VAE to use instead of the model's own")
    g.add_argument("--steps", type=int, metavar="N", help="default: the model's (see below)")
    g.add_argument("--cfg", type=float, metavar="F", help="guidance scale (default: the model's)")
    g.add_argument("--sampler", metavar="NAME", help=f"one of: {', '.join(SAMPLERS)} (default: the model's)")
    g.add_argument("--seed", type=int, metavar="N", help="default: random (recorded in the PNG)")
    g.add_argument("--size", metavar="WxH", help="e.g. 512x768, multiples of 8 (default: the model's native size)")
    g.add_argument("--batch", type=int, metavar="N", help="images, seeds seed, seed+1, ...")
    g.add_argument("--init", metavar="IMG", help="init image (img2img, inpaint)")
    g.add_argument("--strength", type=float, metavar="F", help="how much to change the init image (0..1)")
    g.add_argument("--mask", metavar="IMG", help="inpaint mask, white = repaint, same size as --init")
    g.add_argument("--mask-grow", type=int, metavar="PX", help="grow the mask by PX pixels")
    g.add_argument("--mask-feather", type=int, metavar="PX", help="soft edge, inside the mask, in pixels")
    g.add_argument("--control", action="append", default=[], metavar="KIND=IMG[:STRENGTH]",
                   help=f"a ControlNet input; KIND is one of {', '.join(CONTROL_KINDS)}; a bare "
                        "'inpaint' uses --init and --mask (repeatable)")
    g.add_argument("--controlnet", action="append", default=[], metavar="KIND=ID_OR_PATH",
                   help="the ControlNet model for KIND (default: the model family's own)")
    g.add_argument("--preprocess", action="append", default=[], metavar="KIND=ESTIMATOR",
                   help="run an estimator on KIND's image first (see `brushwork estimators`)")
    g.add_argument("--lora", action="append", default=[], metavar="NAME_OR_PATH:WEIGHT", help="(repeatable)")
    g.add_argument("--region", nargs=2, action="append", default=[], metavar=("MASK[:WEIGHT[:START-END]]", "PROMPT"),
                   help="PROMPT conditions only MASK's white area; 'PROMPT || NEGATIVE' gives it its own "
                        "negative prompt (repeatable; docs/regions.md)")
    g.add_argument("--reference", action="append", default=[], metavar="IMG[:WEIGHT][:MODE][:START-END]",
                   help="a reference image through an IP-Adapter; MODE style (default) or composition "
                        "(repeatable, up to 4; docs/references.md)")
    g.add_argument("--reference-model", metavar="NAME_OR_PATH",
                   help="the IP-Adapter for every --reference (default: the model family's own)")
    g.add_argument("--tile", choices=("x", "y", "xy"), help="seamless tiling on these axes")
    g.add_argument("--device", default=None, help="cuda, cpu or mps (default: the best available)")
    g.set_defaults(func=cmd_generate)


# ---- generate -------------------------------------------------------------------------------


def _defaults_help() -> str:
    """What --help says about defaults: the same table models.defaults applies (no torch)."""
    try:
        from .models.defaults import defaults_for
    except ImportError:
        return ""
    rows = [("SD 1.5", defaults_for("sd15")), ("SDXL", defaults_for("sdxl")),
            ("SDXL Turbo", defaults_for("sdxl", "turbo")), ("LCM", defaults_for("sd15", "lcm")),
            ("Lightning/Hyper", defaults_for("sdxl", "few"))]
    try:
        from .models.bundled import info

        manifest = info()
        if manifest:
            rows.append(("the demo", defaults_for("sd15", manifest=manifest)))
    except ImportError:
        pass
    lines = ["Defaults come from the model (its family and variant, and what its own files say); a value",
             "you give always wins. A preset's sampling settings apply to full-size SD models only.", ""]
    lines += [f"  {label:<16} {d.describe().split(' (')[0]}" for label, d in rows]
    lines += ["", "`brushwork models info NAME` shows the defaults of one model."]
    return "\n".join(lines)


_DEFAULTS_HELP = _defaults_help()


def cmd_generate(args: argparse.Namespace) -> int:
    recipe = recipe_from_args(args)
    out = check_out_path(args.out, count=recipe.batch, overwrite=args.overwrite)
    check_inputs(recipe)
    preset = None
    if args.preset:
        from .presets import load_preset

        preset = load_preset(args.preset)
    plan = plan_run(recipe, explicit_fields(args), preset)
    for note in plan.notes:
        print(f"brushwork: note: {note}", file=sys.stderr)
    recipe = plan.recipe
    if args.dry_run:
        from .engine.plan_command import show

        show(recipe, args.device)
        return 0
    sources = input_sources(recipe)
    _licence_notes(recipe)
    _quiet_libraries()
    from . import Studio

    studio = Studio(device=args.device)
    result = studio.generate(recipe, on_progress=ProgressBar(recipe.batch))
    result.sources.update({k: v for k, v in sources.items() if k not in result.sources})
    for path in result.save(out):
        print(path)
    return 0


def _licence_notes(recipe: Recipe) -> None:
    from .conditioning.estimators import ESTIMATORS

    for c in recipe.controls:
        est = ESTIMATORS.get(c.preprocess)
        if est is not None and not est.commercial_use:
            print(f"brushwork: note: estimator {est.name}: {est.licence}", file=sys.stderr)


def _quiet_libraries() -> None:
    """Our bar is the progress: silence the libraries' loading bars and deprecation chatter
    (download progress from the hub stays visible). BRUSHWORK_DEBUG=1 keeps everything."""
    if os.environ.get("BRUSHWORK_DEBUG"):
        return
    import warnings

    os.environ.setdefault("TRANSFORMERS_VERBOSITY", "error")
    os.environ.setdefault("DIFFUSERS_VERBOSITY", "error")
    warnings.filterwarnings("ignore", category=FutureWarning)
    warnings.filterwarnings("ignore", category=DeprecationWarning)
    try:
        # transformers first: importing diffusers already makes it warn about torchvision.
        from transformers.utils import logging as transformers_logging

        transformers_logging.set_verbosity_error()  # env vars only help before the first import
        from diffusers.utils import logging as diffusers_logging
        from huggingface_hub.utils import enable_progress_bars
    except ImportError:
        return
    diffusers_logging.set_verbosity_error()
    diffusers_logging.disable_progress_bar()
    transformers_logging.disable_progress_bar()
    enable_progress_bars()  # transformers' switch turns the hub's download bars off too


class ProgressBar:
    """One line on stderr, rewritten in place: ``[#####-----] step 5/10 image 1/2``."""

    line_open = False  # a bar is drawn without its newline yet

    def __init__(self, images: int = 1, width: int = 24, stream=None):
        self.images, self.width, self.stream = images, width, stream or sys.stderr

    def __call__(self, progress) -> None:
        done = int(self.width * progress.step / max(1, progress.total))
        line = f"\r[{'#' * done}{'-' * (self.width - done)}] step {progress.step}/{progress.total}"
        if self.images > 1:
            line += f" image {progress.image_index + 1}/{self.images}"
        last = progress.step >= progress.total and progress.image_index + 1 >= self.images
        self.stream.write(line + ("\n" if last else ""))
        self.stream.flush()
        ProgressBar.line_open = not last


# ---- info / rerun / presets ---------------------------------------------------------------------


def cmd_info(args: argparse.Namespace) -> int:
    from .metadata import read_metadata

    meta = read_metadata(args.image)
    if args.json:
        print(json.dumps({"recipe": meta.recipe.to_dict() if meta.recipe else None,
                          "parameters": meta.parameters, "hashes": meta.hashes, "sources": meta.sources,
                          "version": meta.version}, ensure_ascii=False, indent=2))
        return 0
    print(meta.parameters_text or "(no A1111 parameters)")
    if meta.recipe is None:
        print("\n(no Brushwork recipe: made by another tool, so `brushwork rerun` cannot reproduce it)")
        return 0
    print(f"\nBrushwork {meta.version} recipe:")
    print(meta.recipe.to_json(indent=2))
    for title, table in (("hashes (sha256)", meta.hashes), ("sources", meta.sources)):
        if table:
            print(f"\n{title}:")
            for key, value in table.items():
                print(f"  {key}: {value}")
    return 0


def cmd_rerun(args: argparse.Namespace) -> int:
    from .metadata import read_metadata

    out = check_out_path(args.out, overwrite=args.overwrite)
    meta = read_metadata(args.image)
    if meta.recipe is None:
        raise InputImageError(f"{args.image}: has no Brushwork recipe (another tool made it); "
                              "`brushwork info` shows its parameters")
    recipe = meta.recipe.validate()
    if recipe.seed is None or recipe.batch != 1:
        raise InputImageError(f"{args.image}: its recipe has no single seed, so it cannot be reproduced exactly")
    if args.model:
        from .cli_inputs import _absolute_if_path

        recipe = recipe.replace(model=_absolute_if_path(args.model))
    elif not recipe.model and not (recipe.task == "upscale" and recipe.upscale and not recipe.upscale.refine):
        # (an upscale alone runs no diffusion model: brushwork upscale without --refine)
        raise InputImageError(f"{args.image}: its recipe does not record which model made it (made by an older "
                              "Brushwork); pass --model NAME_OR_PATH to rerun it with a model you choose")
    _quiet_libraries()
    from . import Studio

    studio = Studio(device=args.device)
    _restore_inputs(recipe, meta.sources, studio.assets, args.image)
    result = studio.generate(recipe, on_progress=ProgressBar(1))
    before, now = meta.hashes.get("model"), result.hashes.get("model")
    if before and now and before != now:
        print(f"brushwork: warning: the model's sha256 differs from the one {args.image} was made with "
              f"({now[:10]} now, {before[:10]} then): the image will differ", file=sys.stderr)
    for path in result.save(out):
        print(path)
    return 0


def _restore_inputs(recipe: Recipe, sources: dict, store, image: str) -> None:
    """Every input the recipe names by sha256 must be in the store: found there, or at the path
    recorded when the image was made, with the very same bytes."""
    from .assets import content_ref

    for where, ref in recipe.image_refs().items():
        if not is_content_ref(ref) or store.has(ref):
            continue
        path = sources.get(ref)
        if not path:
            raise InputImageError(f"{where}: {image} was made from an input ({ref[:19]}...) that is not in this "
                                  "machine's asset store, and no source file was recorded")
        try:
            data = Path(path).read_bytes()
        except OSError:
            raise InputImageError(f"{where}: the input {path} that {image} was made from is gone") from None
        if content_ref(data) != ref:
            raise InputImageError(f"{where}: {path} has changed since {image} was made (its sha256 differs)")
        store.put(data)


def cmd_presets(args: argparse.Namespace) -> int:
    from .presets import list_presets, preset_problems

    presets = list_presets()
    for p in presets:
        if args.json:
            print(json.dumps({"name": p.name, "description": p.description, "path": str(p.path),
                              "fields": p.fields, "prompt_suffix": p.prompt_suffix,
                              "control": p.control_defaults}, ensure_ascii=False))
        else:
            print(f"{p.name:<20} {p.description}")
    for problem in preset_problems():
        print(f"brushwork: warning: {problem}", file=sys.stderr)
    return 0


def cmd_estimators(args: argparse.Namespace) -> int:
    from .conditioning.estimators import estimator_table

    print(f"{'name':<16} {'kind':<8} {'licence':<58} what")
    for name, kind, licence, summary in estimator_table():
        print(f"{name:<16} {kind:<8} {licence:<58} {summary}")
    return 0


# ---- entry point ------------------------------------------------------------------------------


def main(argv: list[str] | None = None) -> int:
    try:
        parser = build_parser()
        args = parser.parse_args(argv)
        return int(args.func(args) or 0)
    except UsageError as exc:
        return _fail(str(exc), 2)
    except INPUT_ERRORS as exc:
        return _fail(str(exc), 2)
    except BrushworkError as exc:
        return _fail(str(exc), 1)
    except KeyboardInterrupt:
        return _fail("interrupted", 130)
    except BrokenPipeError:
        # `brushwork info x.png | head`: the reader left; that is not an error. Point stdout at
        # devnull so the interpreter's final flush does not complain either.
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return 0
    except Exception as exc:  # never a traceback to the user; BRUSHWORK_DEBUG=1 shows it
        if os.environ.get("BRUSHWORK_DEBUG"):
            raise
        return _fail(f"unexpected {type(exc).__name__}: {_one_line(str(exc))} (BRUSHWORK_DEBUG=1 shows details)", 1)


def _fail(message: str, code: int) -> int:
    if ProgressBar.line_open:  # finish the half-drawn bar so the error is its own line
        sys.stderr.write("\n")
        ProgressBar.line_open = False
    print(f"brushwork: error: {_one_line(message)}", file=sys.stderr)
    return code


def _one_line(text: str) -> str:
    return " ".join(text.split()) or "unknown error"


def _debug(message: str) -> None:
    if os.environ.get("BRUSHWORK_DEBUG"):
        print(f"brushwork: debug: {message}", file=sys.stderr)


if __name__ == "__main__":
    sys.exit(main())
