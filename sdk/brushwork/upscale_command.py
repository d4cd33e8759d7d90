"""``brushwork upscale IMG --factor 4 [--model M] [--refine 0.3] --out OUT.png``: a picture enlarged.

A CLI plugin (``cli.PLUGIN_MODULES``). It builds a task-``upscale`` Recipe (the picture as the
init image, strength 0, ``Recipe.upscale``) and runs it in-process: the super-resolution model
``--model`` (a name in the model folders, a .safetensors file or a hub id; none: Lanczos), then,
with ``--refine S``, an img2img pass at strength S with ``--prompt`` on ``--refine-model`` (default:
the default model). Everything a user can get wrong (the output path, the picture, the factor,
the upscaler's name or format) is refused before any model loads, with the CLI's one-line errors.
"""

from __future__ import annotations

import argparse

from .cli_inputs import UsageError, _absolute_if_path, check_out_path
from .errors import InputImageError
from .recipe import MIN_SIDE, Recipe, Upscale


def register(sub) -> None:
    u = sub.add_parser("upscale", help="enlarge a picture with a super-resolution model (or Lanczos), optionally "
                                       "refined by img2img", description=__doc__.split("\n\n")[1])
    u.add_argument("image", metavar="IMG")
    u.add_argument("--out", required=True, metavar="PATH", help="output PNG; an existing file is refused unless "
                                                                "--overwrite")
    u.add_argument("--overwrite", action="store_true", help="replace OUT if it exists")
    u.add_argument("--factor", type=float, default=2.0, metavar="F", help="how many times larger (default 2; up to 8)")
    u.add_argument("--model", default="", metavar="UPSCALER",
                   help="a super-resolution model: a name in the model folders (models/ESRGAN, upscale_models), a "
                        ".safetensors file or a hub id (owner/repo[/FILE]); default: Lanczos")
    u.add_argument("--refine", type=float, default=0.0, metavar="S",
                   help="then img2img the enlarged picture at this strength (0..1; default 0: no refine)")
    u.add_argument("--prompt", default="", help="the refine's prompt")
    u.add_argument("--negative", default="", metavar="TEXT", help="the refine's negative prompt")
    u.add_argument("--refine-model", default="", metavar="ID_OR_PATH", help="the refine's model (default: the default)")
    u.add_argument("--steps", type=int, metavar="N", help="the refine's steps (default: the model's)")
    u.add_argument("--seed", type=int, metavar="N", help="the refine's seed (default: random, recorded in the PNG)")
    u.add_argument("--tile", choices=("x", "y", "xy"), help="the picture is seamless on these axes: keep it so")
    u.add_argument("--device", default=None, help="cuda, cpu or mps (default: the best available)")
    u.set_defaults(func=cmd_upscale)


def upscale_recipe(args: argparse.Namespace) -> Recipe:
    """The Recipe ``brushwork upscale`` runs; the picture's size is read from its header."""
    from pathlib import Path

    from PIL import Image, UnidentifiedImageError

    path = Path(args.image).expanduser()
    try:
        with Image.open(path) as img:
            width, height = img.size
    except FileNotFoundError:
        raise InputImageError(f"{args.image}: no such file") from None
    except (UnidentifiedImageError, OSError, Image.DecompressionBombError) as exc:
        raise InputImageError(f"{args.image}: not a readable image ({type(exc).__name__})") from None
    # Recipes take sides in multiples of 8: the nearest one (at most 4 px off; the init is fitted).
    w, h = (max(MIN_SIDE, int(round(side / 8)) * 8) for side in (width, height))
    fields = dict(init_image=str(path.resolve()), strength=0.0, width=w, height=h,
                  upscale=Upscale(model=_absolute_if_path(args.model), factor=args.factor, refine=args.refine),
                  prompt=args.prompt, negative_prompt=args.negative, model=_absolute_if_path(args.refine_model),
                  tiling=args.tile or "", seed=args.seed)
    if args.steps is not None:
        fields["steps"] = args.steps
    return Recipe(**fields).validate()


def cmd_upscale(args: argparse.Namespace) -> int:
    out = check_out_path(args.out, overwrite=args.overwrite)
    if not 0.0 <= args.refine <= 1.0:
        raise UsageError(f"--refine {args.refine:g}: a strength between 0 and 1")
    recipe = upscale_recipe(args)
    if recipe.upscale is not None and recipe.upscale.model:  # found (and a pickle refused) before anything loads
        from .models.upscalers import resolve_upscaler

        resolve_upscaler(recipe.upscale.model)
    from .cli import ProgressBar, _quiet_libraries

    _quiet_libraries()
    from . import Studio

    studio = Studio(device=args.device)
    result = studio.generate(recipe, on_progress=ProgressBar(1) if args.refine else None)
    for path in result.save(out):
        print(path)
    return 0
