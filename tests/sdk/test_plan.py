"""The planner (engine/plan.py): a pure, torch-free function of a Recipe and model facts.

These tests import no torch (one of them proves it in a fresh interpreter) and take milliseconds.
The tiny test model's facts: UNet sample size 32, VAE factor 2, so a 64 px tile and the tiled
paths above 128 px; SD 1.5's published shape: 512 px tiles, tiled above 1024 px.
"""

from __future__ import annotations

import dataclasses
import json
import subprocess
import sys

import pytest
from brushwork.engine.plan import (
    REFINE_STRENGTH,
    Crop,
    ModelFacts,
    Plan,
    base_size,
    control_steps,
    crop_window,
    denoise_steps,
    plan,
    tile_grid,
    total_steps,
)
from brushwork.errors import RecipeError
from brushwork.recipe import Control, Recipe

TINY = ModelFacts(family="sd15", sample_size=32, vae_scale=2, unet_channels=4)
TINY_INPAINT = dataclasses.replace(TINY, unet_channels=9)


def r(**changes) -> Recipe:
    base = dict(prompt="a wall", width=64, height=64, steps=4, seed=7, sampler="Euler", cfg=5.0)
    base.update(changes)
    return Recipe(**base)


def test_the_planner_imports_and_runs_without_torch():
    code = (
        "import sys, json\n"
        "from brushwork.engine.plan import plan, ModelFacts\n"
        "from brushwork.recipe import Recipe\n"
        "p = plan(Recipe(width=4096, height=2048, steps=25, cfg=7.0, sampler='Euler a', seed=1, tiling='x'), "
        "ModelFacts.for_family('sd15'))\n"
        "json.dumps(p.to_dict())\n"
        "assert 'torch' not in sys.modules, 'torch was imported'\n"
        "assert 'numpy' not in sys.modules and 'PIL' not in sys.modules\n"
        "print(p.path)\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == "tiled"


def test_small_jobs_run_the_plain_pipeline_of_their_task():
    t2i = plan(r(), TINY)
    assert (t2i.task, t2i.pipeline_task, t2i.path, t2i.strength, t2i.start) == (
        "txt2img", "txt2img", "plain", None, "noise")
    assert t2i.denoise_steps == 4 and t2i.tile_grid == (1, 1) and not t2i.paste_back
    i2i = plan(r(init_image="a.png", strength=0.5), TINY)
    assert (i2i.pipeline_task, i2i.strength, i2i.denoise_steps, i2i.start) == ("img2img", 0.5, 2, "init")
    inp = plan(r(init_image="a.png", mask="m.png", strength=0.75, mask_feather=3), TINY)
    assert (inp.pipeline_task, inp.path, inp.paste_back, inp.mask_feather) == ("inpaint", "plain", True, 3)


def test_a_nine_channel_checkpoint_runs_every_task_as_inpainting():
    t2i = plan(r(), TINY_INPAINT)
    assert (t2i.task, t2i.pipeline_task) == ("txt2img", "inpaint")
    assert t2i.grey_init and t2i.whole_picture_mask and t2i.strength == 1.0 and t2i.denoise_steps == 4
    i2i = plan(r(init_image="a.png", strength=0.5), TINY_INPAINT)
    assert (i2i.pipeline_task, i2i.strength, i2i.grey_init, i2i.whole_picture_mask) == ("inpaint", 0.5, False, True)
    inp = plan(r(init_image="a.png", mask="m.png"), TINY_INPAINT)
    assert not inp.whole_picture_mask and inp.paste_back


def test_a_large_txt2img_has_a_base_pass_then_a_tiled_refine():
    p = plan(r(width=192, height=160, tiling="x"), TINY)
    assert (p.path, p.start, p.refine_seed_offset, p.strength) == ("tiled", "base", 1, REFINE_STRENGTH)
    assert p.sub is not None and (p.sub.path, p.sub.width, p.sub.height) == ("plain", 64, 56)
    assert p.sub.seamless_axes == "x" and p.sub.strength is None
    assert p.denoise_steps == denoise_steps(4, REFINE_STRENGTH) == 1
    assert p.progress_total == 4 + 1 + 2 == total_steps(4)
    # latent 96 x 80, 32-pixel tiles overlapping by 8: rows 0/24/48, cols wrap every 24 px (x seamless)
    assert p.tile_grid == (3, 4) and p.tiles == 12 and p.tile_latent == 32
    assert (p.unet_extra, p.keep_outside) == (False, False)


def test_a_large_job_on_a_nine_channel_checkpoint_carries_the_mask_channels():
    t2i = plan(r(width=192, height=160), TINY_INPAINT)
    assert t2i.path == "tiled" and t2i.unet_extra and not t2i.keep_outside
    assert t2i.sub is not None and t2i.sub.pipeline_task == "inpaint" and t2i.sub.strength == 1.0
    i2i = plan(r(width=192, height=160, init_image="a.png", strength=0.5), TINY_INPAINT)
    assert (i2i.start, i2i.strength, i2i.denoise_steps, i2i.sub) == ("init", 0.5, 2, None)
    assert i2i.progress_total == total_steps(4, 0.5)


def test_a_large_inpaint_runs_a_crop_around_the_mask():
    recipe = r(width=192, height=160, init_image="a.png", mask="m.png", mask_feather=4)
    open_crop = plan(recipe, TINY)
    assert open_crop.path == "cropped_inpaint" and open_crop.crop is None and open_crop.notes
    p = plan(recipe, TINY, mask_spans=((60, 30), (100, 30)))
    # context max(64 / 4, 4 + 2) = 16: 30 + 32 = 62 -> at least a tile (64), centred on the mask
    assert p.crop == Crop(x=83, y=43, width=64, height=64, axes="")
    assert p.sub is not None and (p.sub.path, p.sub.width, p.sub.pipeline_task) == ("plain", 64, "inpaint")
    assert p.paste_back and not p.sub.paste_back
    asked = []
    assert plan(recipe, TINY, mask_spans=lambda axes: asked.append(axes) or ((60, 30), (100, 30))) == p
    assert asked == [""]  # the mask is read with the planned seamless axes, once
    assert plan(r(init_image="a.png", mask="m.png"), TINY, mask_spans=lambda axes: asked.append(axes)).path == "plain"
    assert asked == [""]  # ... and only when the plan needs a crop
    empty = plan(recipe, TINY, mask_spans=(None, None))
    assert empty.sub is None and empty.crop is None


@pytest.mark.parametrize("facts, keep, extra", [(TINY, True, False), (TINY_INPAINT, False, True)])
def test_a_crop_over_two_tiles_runs_the_tiled_img2img_phases(facts, keep, extra):
    recipe = r(width=192, height=160, init_image="a.png", mask="m.png", strength=1.0)
    p = plan(recipe, facts, mask_spans=((16, 128), (16, 160)))
    assert p.crop == Crop(x=0, y=0, width=192, height=160, axes="")
    assert p.sub is not None and (p.sub.path, p.sub.start, p.sub.strength) == ("tiled", "init", 1.0)
    assert (p.sub.keep_outside, p.sub.unet_extra) == (keep, extra)
    assert p.progress_total == total_steps(4, 1.0)


def test_a_seamless_crop_wraps_and_keeps_only_the_axes_it_spans():
    recipe = r(width=192, height=160, init_image="a.png", mask="m.png", tiling="xy")
    p = plan(recipe, TINY, mask_spans=((0, 160), (176, 30)))  # the columns cross the right edge
    assert p.crop is not None and p.crop.x + p.crop.width > 192 and p.crop.axes == "y"


def test_control_step_ranges_follow_diffusers_controlnet_keep():
    assert control_steps(0.25, 0.75, 4) == (1, 2)
    assert control_steps(0.0, 1.0, 3) == (0, 1, 2)
    p = plan(r(controls=[Control(kind="depth", image="d.png", strength=0.8, start=0.25, end=0.75),
                         Control(kind="canny", image="c.png", strength=0.0)]), TINY)
    assert [(c.kind, c.strength, c.steps) for c in p.controls] == [("depth", 0.8, (1, 2)), ("canny", 0.0, ())]
    big = plan(r(width=192, height=192, steps=20, controls=[Control(kind="depth", image="d.png", end=0.5)]), TINY)
    assert big.controls[0].steps == control_steps(0.0, 0.5, denoise_steps(20, REFINE_STRENGTH))


def test_the_plan_is_frozen_and_plain_data_and_needs_the_model_s_defaults_filled():
    p = plan(r(width=192, height=160, batch=3), TINY)
    with pytest.raises(dataclasses.FrozenInstanceError):
        p.path = "plain"  # type: ignore[misc]
    assert p.seeds == (7, 8, 9)
    data = json.loads(json.dumps(p.to_dict()))
    assert data["sub"]["width"] == 64 and data["tile_grid"] == [3, 4]
    assert isinstance(p, Plan)
    # plan() trusts a recipe its boundary validated (docs/architecture.md), but it cannot plan a
    # field left to the model: that is a clear error naming the field, not a None deep inside.
    with pytest.raises(RecipeError, match="steps: is unset"):
        plan(r(steps=None), TINY)
    with pytest.raises(RecipeError, match="width: is unset"):
        plan(r(width=None), TINY)


def test_model_facts_from_configs_and_families():
    assert ModelFacts.for_family("sd15").tile == 512 and ModelFacts.for_family("sdxl").tile == 1024
    assert ModelFacts.for_family("sd15", nine_channels=True).nine_channels
    facts = ModelFacts.from_configs("sd15", {"sample_size": 32, "in_channels": 9},
                                    {"block_out_channels": [32, 64]})
    assert (facts.native, facts.tile, facts.unet_channels) == (64, 64, 9)
    # a tile is never under 32 latent pixels (the 64 px demo model: 256 px tiles)
    assert ModelFacts(sample_size=8, vae_scale=8).tile == 256
    assert plan(r(width=1024, height=1024), ModelFacts.for_family("sd15")).path == "plain"
    assert plan(r(width=1032, height=512), ModelFacts.for_family("sd15")).path == "tiled"


def test_the_pure_helpers_agree_with_their_documented_values():
    assert base_size(4096, 2048, 512) == (512, 256)
    assert tile_grid(32, 32, 32, "") == (1, 1) and tile_grid(32, 32, 32, "xy") == (2, 2)
    assert crop_window(100, 30, 192, 16, 64, wrap=False) == (83, 64)
    assert crop_window(180, 30, 192, 16, 64, wrap=True) == (163, 64)


def test_brushwork_plan_prints_the_plan_and_an_estimate_without_torch(tmp_path, tiny_models):
    recipe = tmp_path / "big.json"
    recipe.write_text(Recipe(prompt="a wall", width=192, height=160, seed=3, steps=4, tiling="x",
                             model=str(tiny_models.sd15_inpaint)).to_json())
    code = ("import sys\nfrom brushwork.cli import main\n"
            f"code = main(['plan', {str(recipe)!r}])\n"
            "assert 'torch' not in sys.modules, 'torch was imported'\nsys.exit(code)\n")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr
    text = out.stdout
    assert "9-channel UNet" in text and "path: tiled" in text and "pipeline: inpaint" in text
    assert "tiles: 3 x 4 of 64 px" in text and "base pass:" in text and "seamless axes: x" in text
    assert "estimate per image:" in text and "MiB" in text
    assert "measured error ±" in text  # the estimate says how far off it has been, with a range
    # The recipe left CFG and the sampler to the model: the plan shows the model's, steps stay 4.
    from brushwork.models import sources
    from brushwork.models.defaults import defaults_for_ref

    wanted = defaults_for_ref(sources.resolve(str(tiny_models.sd15_inpaint), "pipeline"))
    assert f"steps: 4 ({wanted.sampler}, CFG {wanted.cfg:g})" in text


def test_the_estimate_says_its_measured_error_and_under_what_load(tmp_path):
    from brushwork.engine.estimate import DEFAULT, estimate, load_calibration, save_calibration

    p = plan(r(width=192, height=160), TINY)
    e = estimate(p, DEFAULT)
    low, high = e.seconds_range
    assert low == max(0.0, e.seconds * (1 - DEFAULT.time_error)) and high == e.seconds * (1 + DEFAULT.time_error)
    assert f"measured error ±{DEFAULT.time_error:.0%}" in e.describe_time()
    assert "least of 1 run, load 4.0 per core" in e.basis
    unmeasured = estimate(p, dataclasses.replace(DEFAULT, time_error=float("nan"), memory_error=float("nan")))
    assert unmeasured.seconds_range is None and "error not measured" in unmeasured.describe_time()
    # A calibration saved before load and repeats were recorded still loads (they read as unknown).
    path = save_calibration(tmp_path, dataclasses.replace(DEFAULT, device="cpu"))
    old = {k: v for k, v in json.loads(path.read_text()).items() if k not in ("load", "repeats")}
    path.write_text(json.dumps(old))
    loaded = load_calibration(tmp_path, "cpu")
    assert loaded.unet_s == DEFAULT.unet_s and loaded.repeats == 1 and loaded.load != loaded.load


def test_generate_dry_run_prints_the_plan_and_loads_nothing(tmp_path, tiny_models):
    """``generate --dry-run``: the same plan, with the CLI's model defaults applied, no torch, no file."""
    out_png = tmp_path / "out" / "wall.png"
    code = ("import sys\nfrom brushwork.cli import main\n"
            f"code = main(['generate', 'a wall', '--model', {str(tiny_models.sd15)!r}, '--size', '192x160',"
            f" '--steps', '4', '--tile', 'x', '--out', {str(out_png)!r}, '--dry-run'])\n"
            "assert 'torch' not in sys.modules, 'torch was imported'\nsys.exit(code)\n")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr
    assert "size: 192x160" in out.stdout and "seamless axes: x" in out.stdout and "estimate per image:" in out.stdout
    assert not out_png.exists() and not out_png.parent.exists()


def test_the_estimate_grows_with_the_work():
    from brushwork.engine.estimate import estimate, work

    sd15 = ModelFacts.for_family("sd15")
    small, big = plan(r(width=512, height=512, steps=20), sd15), plan(r(width=4096, height=4096, steps=20), sd15)
    assert work(small)[0] == 20 * 64 * 64 * 2  # steps x latent pixels x CFG halves
    assert estimate(big).seconds > estimate(small).seconds and estimate(big).peak_bytes > 0
    # the tiled path's largest UNet call is one tile, not the picture
    assert work(big)[2] == 64 * 64 * 2
