"""SDXL through the same Studio: txt2img, img2img, inpaint, ControlNet (tiny SDXL)."""

from __future__ import annotations

import numpy as np
import pytest
from brushwork import BrushworkError, Control
from PIL import Image
from test_engine_support import gradient, mean_diff, module_studio, pixels, recipe, square_mask, write_png

# One worker runs this whole module, so its tests share one Studio's loaded models.
pytestmark = pytest.mark.xdist_group("engine-sdxl")



@pytest.fixture(scope="module")
def studio(tmp_path_factory):
    return module_studio(tmp_path_factory)


@pytest.fixture(scope="module")
def pictures(tmp_path_factory):
    d = tmp_path_factory.mktemp("pictures")
    return {"init": write_png(d / "init.png", gradient(seed=4)),
            "mask": write_png(d / "mask.png", square_mask()),
            "control": write_png(d / "control.png", gradient(seed=5).rotate(180))}


def depth(tiny_models, image, **kw):
    return Control(kind="depth", image=image, model=str(tiny_models.sdxl_controlnets["depth"]), **kw)


def test_sdxl_txt2img_is_reproducible_with_previews(studio, tiny_models):
    seen = []
    a = studio.generate(recipe(tiny_models.sdxl), on_progress=seen.append)
    b = studio.generate(recipe(tiny_models.sdxl))
    assert a.images[0].size == (64, 64)
    assert np.array_equal(pixels(a.images[0]), pixels(b.images[0]))
    assert [p.step for p in seen] == [1, 2] and seen[0].preview.size == (32, 32)
    (base,) = studio.pipelines._bases.values()
    assert base.family == "sdxl"


def test_sdxl_controlnet_changes_the_image(studio, tiny_models, pictures):
    none = studio.generate(recipe(tiny_models.sdxl)).images[0]
    with_cn = studio.generate(recipe(tiny_models.sdxl, controls=[depth(tiny_models, pictures["control"])])).images[0]
    zero = studio.generate(recipe(tiny_models.sdxl, controls=[
        depth(tiny_models, pictures["control"], strength=0.0)])).images[0]
    assert mean_diff(with_cn, none) > 1.0
    assert mean_diff(zero, none) < 0.5


def test_sdxl_img2img_and_inpaint_with_controlnet(studio, tiny_models, pictures):
    original = pixels(Image.open(pictures["init"]))
    img2img = studio.generate(recipe(tiny_models.sdxl, init_image=pictures["init"], strength=0.6)).images[0]
    assert mean_diff(img2img, Image.open(pictures["init"])) > 0
    inpaint = studio.generate(recipe(tiny_models.sdxl, init_image=pictures["init"], mask=pictures["mask"],
                                     strength=1.0, controls=[depth(tiny_models, pictures["control"])])).images[0]
    outside = np.asarray(square_mask()) == 0
    assert np.array_equal(pixels(inpaint)[outside], original[outside])
    assert studio.pipelines.base_loads == 1


def test_sd15_controlnet_on_sdxl_is_a_clear_error(studio, tiny_models, pictures):
    wrong = Control(kind="depth", image=pictures["control"], model=str(tiny_models.controlnets["depth"]))
    with pytest.raises(BrushworkError) as err:
        studio.generate(recipe(tiny_models.sdxl, controls=[wrong]))
    assert "controls[0]" in str(err.value) and ("family" in str(err.value) or "sd15" in str(err.value))
