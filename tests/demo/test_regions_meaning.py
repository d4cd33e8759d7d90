"""Regions on the demo model: two regions with two colour words, each half should take its colour.

Measured (docs/regions.md): the demo weights do not show it. Base "bricks", left half "red
bricks", right half "blue bricks", 64x64, Euler a, 20 steps, CFG 5, mean RGB of each half. The
weights of the 4th session: seed 1: left (0.52, 0.33, 0.66), right (0.34, 0.20, 0.43), both
purple. The retrained weights (5th session, every colour word right on its own, 64/64): seed 1
left (0.56, 0.28, 0.44), right (0.56, 0.27, 0.43); seed 2 left (0.58, 0.29, 0.48), right
(0.57, 0.28, 0.47): one mix of red and blue over the whole picture, the halves alike.
The blend itself is checked exactly against diffusers on the tiny
models (tests/sdk/test_regions.py); the demo's 8x8 latent and whole-picture colour training make a
half-and-half picture something it never learned. strict: when a demo model keeps the promise, this
starts passing and the mark must go.
"""

from __future__ import annotations

import brushwork.demo as demo
import numpy as np
import pytest
from brushwork import Recipe
from brushwork.recipe import Region
from PIL import Image


@pytest.mark.xfail(strict=True, reason="the demo weights paint both halves one red-blue mix (figures in the "
                                       "module doc and docs/regions.md)")
def test_two_regions_two_colours(studio, size, tmp_path):
    half = size // 2
    masks = []
    for name, box in (("left", (0, 0, half, size)), ("right", (half, 0, size, size))):
        mask = Image.new("L", (size, size), 0)
        mask.paste(255, box)
        mask.save(tmp_path / f"{name}.png")
        masks.append(str(tmp_path / f"{name}.png"))
    for seed in (1, 2):
        recipe = Recipe(prompt="bricks", model=str(demo.weights_dir()), steps=20, cfg=5.0, sampler="Euler a",
                        width=size, height=size, seed=seed,
                        regions=[Region(mask=masks[0], prompt="red bricks"),
                                 Region(mask=masks[1], prompt="blue bricks")])
        image = np.asarray(studio.generate(recipe).images[0].convert("RGB"), dtype=np.float32) / 255.0
        left, right = image[:, :half].reshape(-1, 3).mean(0), image[:, half:].reshape(-1, 3).mean(0)
        assert left[0] - left[2] > 0.1, f"seed {seed}: left half not reddish: {left.round(2)}"
        assert right[2] - right[0] > 0.1, f"seed {seed}: right half not bluish: {right.round(2)}"
