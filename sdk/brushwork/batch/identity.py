"""A row's identity: the stable hash of its canonical Recipe, the output name made from it, and
checking that an output already on disk really is that row's image.

Canonical JSON: the Recipe as a dict, keys sorted, no whitespace, whole-number floats written as
integers (so ``cfg: 7`` and ``cfg: 7.0`` are one recipe), inputs as ``sha256:`` refs (so the hash
follows the pictures' content, not where they happen to lie). The hash covers everything that
decides the pixels, the seed included; a batch row always has a fixed seed.
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path
from typing import Any

from ..errors import BrushworkError
from ..recipe import MAX_SEED, Recipe

NAME_HEX = 16  # 64 bits of the sha256 in a file name: collisions need ~4e9 rows
SUFFIX = ".png"


def canonical_json(recipe: Recipe) -> str:
    return json.dumps(_canonical(recipe.to_dict()), sort_keys=True, separators=(",", ":"), ensure_ascii=False)


def recipe_hash(recipe: Recipe) -> str:
    return hashlib.sha256(canonical_json(recipe).encode("utf-8")).hexdigest()


def derived_seed(recipe: Recipe) -> int:
    """A seed for a row that gave none: taken from the recipe itself, so a rerun of the batch
    picks the same one (a random seed would make every rerun a new image)."""
    digest = hashlib.sha256(canonical_json(recipe.replace(seed=None)).encode("utf-8")).digest()
    return int.from_bytes(digest[:4], "big") % (MAX_SEED + 1)


def output_name(recipe: Recipe, name: str = "") -> str:
    digest = recipe_hash(recipe)[:NAME_HEX]
    return f"{name}-{digest}{SUFFIX}" if name else f"{digest}{SUFFIX}"


def verify_output(path: Path, expected: Recipe) -> str:
    """'' when ``path`` is a whole PNG carrying ``expected`` as its Recipe, else why not."""
    from PIL import Image

    from ..metadata import read_metadata

    try:
        meta = read_metadata(path)
        with Image.open(path) as img:
            img.load()  # a truncated file fails here
    except (OSError, ValueError, BrushworkError) as exc:
        return f"unreadable ({' '.join(str(exc).split())})"
    if meta.recipe is None:
        return "carries no Brushwork recipe"
    found = meta.recipe
    if not expected.model:
        # An empty model means "the default": the Studio records which one it used.
        found = found.replace(model="")
    if expected.unset:
        # So do the size, steps, CFG and sampler a row leaves to the model (Recipe.MODEL_DEFAULTED).
        found = found.replace(**dict.fromkeys(expected.unset))
    if recipe_hash(found) != recipe_hash(expected):
        return "its recipe differs from this row's"
    return ""


def _canonical(value: Any) -> Any:
    if isinstance(value, dict):
        return {k: _canonical(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_canonical(v) for v in value]
    if isinstance(value, float) and value.is_integer():
        return int(value)
    return value
