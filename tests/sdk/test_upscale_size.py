"""An upscale alone (task "upscale") left without a size takes its picture's size, not the
model's default size: it enlarges the picture it is given."""

from __future__ import annotations

import numpy as np
import pytest
from brushwork.recipe import Recipe, Upscale
from PIL import Image


@pytest.fixture(scope="module")
def studio(tmp_path_factory):
    from test_engine_support import module_studio

    return module_studio(tmp_path_factory)


def picture(path, width: int, height: int):
    pixels = (np.random.default_rng(0).random((height, width, 3)) * 255).astype(np.uint8)
    Image.fromarray(pixels).save(path)
    return path


def test_an_upscale_without_a_size_enlarges_its_picture(studio, tmp_path):
    init = picture(tmp_path / "in.png", 100, 76)  # not multiples of 8: the Recipe's size rounds down
    result = studio.generate(Recipe(init_image=str(init), strength=0.0, seed=1, upscale=Upscale(factor=2.0)))
    assert (result.recipe.width, result.recipe.height) == (96, 72)
    assert result.images[0].size == (192, 144)
    assert studio.loaded_models() == []


def test_an_explicit_size_still_wins(studio, tmp_path):
    init = picture(tmp_path / "in.png", 100, 76)
    result = studio.generate(Recipe(init_image=str(init), strength=0.0, seed=1, width=64, height=64,
                                    upscale=Upscale(factor=2.0)))
    assert result.images[0].size == (128, 128)


def test_a_missing_picture_is_still_named(studio, tmp_path):
    from brushwork.errors import BrushworkError

    with pytest.raises(BrushworkError, match="missing.png"):
        studio.generate(Recipe(init_image=str(tmp_path / "missing.png"), strength=0.0, upscale=Upscale()))
