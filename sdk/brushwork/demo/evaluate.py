"""What the demo model knows, measured and drawn: ``python -m brushwork.demo.evaluate``.

    python -m brushwork.demo.evaluate [--weights DIR] [--sheet docs/demo-contact-sheet.png] [--json]

- measures: for every colour word and every measured pattern (bricks, stripes, checker, tiles)
  on two seeds, is the colour right (``measures.colour_name``) and is the pattern there
  (``measures.pattern_ok``)? This is how a retrained model is compared with the shipped one.
- ``--sheet``: a contact sheet, one row per pattern and one column per colour, each cell the
  model's picture for "<colour> <pattern>" (seed 1) at its native size, scaled up 2x.

Generations run through ``brushwork.Studio`` with the model's recommended settings, as a user's.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any

from . import dataset, measures
from .manifest import WEIGHTS_DIR

SEEDS = (1, 2)


def _studio():
    from ..engine.studio import Studio

    return Studio(device="cpu")


def render(studio, weights: Path, prompt: str, seed: int, size: int = 64, **fields):
    from ..recipe import Recipe

    manifest = json.loads((weights / "demo.json").read_text())
    rec = manifest.get("recommended", {})
    recipe = Recipe(prompt=prompt, model=str(weights), steps=rec.get("steps", 20), cfg=rec.get("cfg", 5.0),
                    sampler=rec.get("sampler", "Euler a"), width=size, height=size, seed=seed, **fields)
    return studio.generate(recipe).images[0]


def evaluate(weights: Path, studio=None, size: int = 64, tiling: str = "") -> dict:
    """{"colours": {word: right/N}, "patterns": {word: passed/N}, "cases": [...]}"""
    studio = studio or _studio()
    cases: list[dict[str, Any]] = []
    for pattern in measures.MEASURED_PATTERNS:
        for colour in dataset.COLOURS:
            for seed in SEEDS:
                image = render(studio, weights, f"{colour} {pattern}", seed, size, tiling=tiling)
                seen = measures.colour_name(image)
                ok, figures = measures.pattern_ok(pattern, image)
                cases.append({"prompt": f"{colour} {pattern}", "seed": seed, "colour": colour, "pattern": pattern,
                              "colour_seen": seen, "colour_ok": seen == colour, "pattern_ok": ok,
                              "figures": figures})
    summary: dict = {"colours": {}, "patterns": {}}
    for colour in dataset.COLOURS:
        mine = [c for c in cases if c["colour"] == colour]
        summary["colours"][colour] = f"{sum(c['colour_ok'] for c in mine)}/{len(mine)}"
    for pattern in measures.MEASURED_PATTERNS:
        mine = [c for c in cases if c["pattern"] == pattern]
        summary["patterns"][pattern] = f"{sum(c['pattern_ok'] for c in mine)}/{len(mine)}"
    summary["colour_right"] = f"{sum(c['colour_ok'] for c in cases)}/{len(cases)}"
    summary["pattern_right"] = f"{sum(c['pattern_ok'] for c in cases)}/{len(cases)}"
    summary["cases"] = cases
    return summary


def claims_from(result: dict) -> dict:
    """What the model may claim: the colours right in every case (all patterns, both seeds), and
    for each pattern the colours whose pictures show it on both seeds (a pattern may be learned
    in some colours and not yet in others; the meaning tests check every claimed pair)."""
    cases = result["cases"]
    colours = [c for c in dataset.COLOURS if all(x["colour_ok"] for x in cases if x["colour"] == c)]
    patterns = {p: [c for c in dataset.COLOURS
                    if all(x["pattern_ok"] for x in cases if x["pattern"] == p and x["colour"] == c)]
                for p in measures.MEASURED_PATTERNS}
    return {"colours": colours, "patterns": {p: cs for p, cs in patterns.items() if cs},
            "colour_right": result["colour_right"], "pattern_right": result["pattern_right"],
            "measured_by": "python -m brushwork.demo.evaluate"}


def write_claims(weights: Path, claims: dict) -> None:
    """Record the claims in the model's demo.json (the meaning tests check every one)."""
    from ..assets import atomic_write_bytes

    path = weights / "demo.json"
    data = json.loads(path.read_text())
    data["claims"] = claims
    atomic_write_bytes(path, (json.dumps(data, indent=2) + "\n").encode())


def contact_sheet(weights: Path, out: Path, studio=None, size: int = 64, scale: int = 2, seed: int = 1) -> Path:
    """One row per pattern, one column per colour, labelled; written atomically as a PNG."""
    from PIL import Image, ImageDraw

    studio = studio or _studio()
    patterns, colours = list(dataset.PATTERNS), list(dataset.COLOURS)
    cell, pad, left, top = size * scale, 4, 64, 18
    sheet = Image.new("RGB", (left + len(colours) * (cell + pad), top + len(patterns) * (cell + pad)), "white")
    draw = ImageDraw.Draw(sheet)
    for j, colour in enumerate(colours):
        draw.text((left + j * (cell + pad) + 4, 3), colour, fill="black")
    for i, pattern in enumerate(patterns):
        y = top + i * (cell + pad)
        draw.text((4, y + cell // 2 - 6), pattern, fill="black")
        for j, colour in enumerate(colours):
            image = render(studio, weights, f"{colour} {pattern}", seed, size)
            sheet.paste(image.resize((cell, cell), Image.Resampling.NEAREST), (left + j * (cell + pad), y))
    from ..assets import atomic_writer

    out.parent.mkdir(parents=True, exist_ok=True)
    with atomic_writer(out) as f:
        sheet.save(f, format="PNG", optimize=True)
    return out


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m brushwork.demo.evaluate", description=__doc__.split("\n\n")[0])
    parser.add_argument("--weights", type=Path, default=WEIGHTS_DIR, help="the demo model folder to measure")
    parser.add_argument("--sheet", type=Path, default=None, help="also write a contact sheet PNG here")
    parser.add_argument("--json", action="store_true", help="print every case as JSON")
    parser.add_argument("--size", type=int, default=64)
    parser.add_argument("--tiling", default="", choices=("", "x", "y", "xy"),
                        help="measure seamless pictures (README command 1 tiles on xy)")
    parser.add_argument("--write-claims", action="store_true",
                        help="record what the model gets right in its demo.json (the meaning tests read it)")
    args = parser.parse_args(argv)
    if args.write_claims and args.tiling:
        parser.error("--write-claims: claims are measured untiled, as the meaning tests check them")
    import torch

    torch.set_num_threads(1)
    studio = _studio()
    result = evaluate(args.weights, studio, args.size, args.tiling)
    if args.json:
        print(json.dumps(result, indent=1))
    else:
        for case in result["cases"]:
            if not (case["colour_ok"] and case["pattern_ok"]):
                print(f"  miss: {case['prompt']!r} seed {case['seed']}: colour {case['colour_seen']}, "
                      f"pattern {'ok' if case['pattern_ok'] else 'no'} ({case['figures']})")
        print(f"colours right {result['colour_right']}: {result['colours']}")
        print(f"patterns right {result['pattern_right']}: {result['patterns']}")
    claims = claims_from(result)
    patterns = "; ".join(f"{p} in {', '.join(cs)}" for p, cs in claims["patterns"].items()) or "none"
    print(f"claims: colours {', '.join(claims['colours']) or 'none'}; patterns: {patterns}")
    if args.write_claims:
        write_claims(args.weights, claims)
    if args.sheet:
        print(contact_sheet(args.weights, args.sheet, studio, args.size), file=sys.stderr)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
