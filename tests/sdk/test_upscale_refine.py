"""The upscale step's refine carries the recipe's regions (masks scaled to the upscaled size) and
reference images, on the tiny SD 1.5 through the real Studio (docs/upscale.md)."""

from __future__ import annotations

import numpy as np
import pytest
from brushwork.engine.plan import ModelFacts, plan
from brushwork.engine.upscale_plan import INPAINT_CONTROL_NOTE
from brushwork.recipe import Control, Reference, Region, Upscale
from brushwork.testing.tiny_ip_adapter import SD15_ADAPTER, ensure_tiny_ip_adapters
from PIL import Image
from test_engine_support import SIZE, gradient, module_studio, pixels, recipe, write_png

pytestmark = pytest.mark.xdist_group("upscale-refine")

OTHER = "a blue car in the snow"
HIRES = Upscale(model="", factor=2.0, refine=0.5)  # Lanczos x2, then img2img at 0.5


@pytest.fixture(scope="module")
def studio(tmp_path_factory):
    return module_studio(tmp_path_factory)


@pytest.fixture(scope="module")
def files(tmp_path_factory):
    d = tmp_path_factory.mktemp("upscale-refine")
    return {"white": write_png(d / "white.png", Image.new("L", (SIZE, SIZE), 255)),
            "init": write_png(d / "init.png", gradient(seed=3)),
            "reference": write_png(d / "reference.png", gradient(seed=7).transpose(Image.Transpose.ROTATE_90))}


def test_the_refine_plan_keeps_regions_and_references(files):
    r = recipe("tiny", regions=[Region(mask=files["white"], prompt=OTHER)], upscale=HIRES,
               references=[Reference(image=files["reference"])],
               controls=[Control(kind="inpaint", image=files["init"])])
    refine = plan(r, ModelFacts.for_family("sd15")).upscale.refine_plan
    assert (refine.width, refine.height) == (2 * SIZE, 2 * SIZE)
    assert refine.regions is not None and refine.regions.items[0].prompt == OTHER
    assert refine.regions.items[0].steps == tuple(range(refine.denoise_steps))
    assert len(refine.references) == 1 and refine.references[0].steps == tuple(range(refine.denoise_steps))
    assert refine.controls == () and INPAINT_CONTROL_NOTE in refine.notes  # the inpaint control: said, not silent


def test_a_white_region_in_the_refine_is_the_regions_prompt(studio, tiny_models, files):
    steps = dict(steps=4)  # the refine at 0.5 runs 2 of them
    with_region = studio.generate(recipe(tiny_models.sd15, **steps, upscale=HIRES,
                                         regions=[Region(mask=files["white"], prompt=OTHER)])).images[0]
    plain = studio.generate(recipe(tiny_models.sd15, **steps, upscale=HIRES, prompt=OTHER)).images[0]
    assert with_region.size == (2 * SIZE, 2 * SIZE)
    assert np.abs(pixels(with_region) - pixels(plain)).max() <= 1
    # the base prompt does give another picture: the region acted in the job and in its refine
    base = studio.generate(recipe(tiny_models.sd15, **steps, upscale=HIRES)).images[0]
    assert np.abs(pixels(base) - pixels(plain)).max() > 1


def test_a_white_region_acts_in_the_refine_itself(studio, tiny_models, files):
    """An img2img job at strength 0.5 with the region only differs from the plain run of the region's
    prompt if the refine dropped it: both the job and the refine must carry it."""
    job = dict(init_image=files["init"], strength=0.5, steps=4, upscale=HIRES)
    with_region = studio.generate(recipe(tiny_models.sd15, **job,
                                         regions=[Region(mask=files["white"], prompt=OTHER)])).images[0]
    plain = studio.generate(recipe(tiny_models.sd15, **job, prompt=OTHER)).images[0]
    assert np.abs(pixels(with_region) - pixels(plain)).max() <= 1


def test_a_reference_changes_the_refine(studio, tiny_models, files):
    """Task upscale (the init picture as it is, no diffusion) with a refine: only the refine can
    see the reference."""
    adapter = ensure_tiny_ip_adapters(tiny_models.root)[SD15_ADAPTER]
    job = dict(init_image=files["init"], strength=0.0, steps=4, upscale=HIRES)
    without = studio.generate(recipe(tiny_models.sd15, **job)).images[0]
    ref = Reference(image=files["reference"], weight=1.0, model=str(adapter))
    with_ref = studio.generate(recipe(tiny_models.sd15, **job, references=[ref])).images[0]
    assert with_ref.size == without.size == (2 * SIZE, 2 * SIZE)
    assert np.abs(pixels(with_ref) - pixels(without)).max() > 10
    # ... and its weight 0 is no reference
    none = studio.generate(recipe(tiny_models.sd15, **job, references=[Reference(
        image=files["reference"], weight=0.0, model=str(adapter))])).images[0]
    assert np.abs(pixels(none) - pixels(without)).max() <= 1


def test_an_upscale_alone_with_a_refine_takes_regions(studio, tiny_models, files):
    """Task upscale (strength 0): the refine is the only diffusion, and a white region in it is the
    region's prompt; without a refine, regions are refused before anything loads."""
    from brushwork.errors import RecipeError

    job = dict(init_image=files["init"], strength=0.0, steps=4, upscale=HIRES)
    with_region = studio.generate(recipe(tiny_models.sd15, **job,
                                         regions=[Region(mask=files["white"], prompt=OTHER)])).images[0]
    plain = studio.generate(recipe(tiny_models.sd15, **job, prompt=OTHER)).images[0]
    base = studio.generate(recipe(tiny_models.sd15, **job)).images[0]
    assert np.abs(pixels(with_region) - pixels(plain)).max() <= 1
    assert np.abs(pixels(base) - pixels(plain)).max() > 1
    no_refine = recipe(tiny_models.sd15, **{**job, "upscale": Upscale(factor=2.0)},
                       regions=[Region(mask=files["white"], prompt=OTHER)])
    with pytest.raises(RecipeError, match="regions act only in its refine"):
        no_refine.validate()
