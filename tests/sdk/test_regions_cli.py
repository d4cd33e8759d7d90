"""``brushwork generate --region``: the option's syntax, errors before any model loads, and a region
run whose PNG keeps the region and its mask's hash, so `info` shows it and `rerun` reproduces it."""

from __future__ import annotations

import json

import numpy as np
import pytest
from brushwork.cli import build_parser, main, recipe_from_args
from PIL import Image

pytestmark = pytest.mark.xdist_group("regions")


def recipe_for(*args):
    return recipe_from_args(build_parser().parse_args(["generate", "a fox", "--out", "o.png", *args]))


@pytest.fixture
def left_mask(tmp_path):
    mask = Image.new("L", (64, 64), 0)
    mask.paste(255, (0, 0, 32, 64))
    path = tmp_path / "left.png"
    mask.save(path)
    return path


def test_region_specs():
    r = recipe_for("--region", "m.png", "a red apple", "--region", r"C:\art\m.png:0.5:0.2-0.8", "a sky || blurry",
                   "--region", "C:/art/n.png:1.5", "grass")
    first, second, third = r.regions
    assert (first.mask, first.prompt, first.negative_prompt, first.weight, first.start, first.end) == \
        ("m.png", "a red apple", "", 1.0, 0.0, 1.0)
    assert (second.mask, second.prompt, second.negative_prompt, second.weight, second.start, second.end) == \
        (r"C:\art\m.png", "a sky", "blurry", 0.5, 0.2, 0.8)
    assert (third.mask, third.weight) == ("C:/art/n.png", 1.5)


@pytest.mark.parametrize("args, match", [
    (("--region", "{missing}", "a sky"), "--region"),
    (("--region", "{tall}", "a sky", "--size", "64x64"), "proportions"),
    (("--region", "{left}", "  "), "regions[0].prompt"),
    (("--region", "{left}:3", "a sky"), "regions[0].weight"),
])
def test_bad_regions_are_one_line_exit_2_before_any_model(tmp_path, left_mask, capsys, args, match):
    tall = tmp_path / "tall.png"
    Image.new("L", (32, 64), 255).save(tall)
    paths = {"missing": tmp_path / "no-such.png", "tall": tall, "left": left_mask}
    args = [a.format(**paths) for a in args]
    out = tmp_path / "out.png"
    code = main(["generate", "a fox", "--model", "no-such-model-anywhere", *args, "--out", str(out)])
    err = capsys.readouterr().err
    assert code == 2 and match in err and "Traceback" not in err, err
    assert not out.exists()


@pytest.mark.slow
def test_region_through_the_cli_then_info_and_rerun(tiny_models, tmp_path, left_mask, capsys, monkeypatch):
    monkeypatch.setenv("BRUSHWORK_MODEL_DIRS", str(tiny_models.root))
    out = tmp_path / "r.png"
    assert main(["generate", "a red apple", "--model", "tiny-sd15", "--steps", "2", "--size", "64x64", "--seed", "5",
                 "--region", f"{left_mask}:0.8:0-0.5", "a blue car || blurry", "--out", str(out)]) == 0
    capsys.readouterr()
    assert main(["info", str(out), "--json"]) == 0
    info = json.loads(capsys.readouterr().out)
    region = info["recipe"]["regions"][0]
    assert (region["prompt"], region["negative_prompt"], region["weight"], region["end"]) == \
        ("a blue car", "blurry", 0.8, 0.5)
    assert info["hashes"]["regions[0].mask"] == region["mask"].split(":", 1)[1]
    assert info["sources"].get(region["mask"]) == str(left_mask)  # where a rerun finds it again

    import shutil

    from brushwork import paths

    shutil.rmtree(paths.state_dir() / "assets", ignore_errors=True)  # as if on another machine
    again = tmp_path / "again.png"
    assert main(["rerun", str(out), "--out", str(again)]) == 0
    assert np.array_equal(np.asarray(Image.open(again)), np.asarray(Image.open(out)))


# ---- the plan (torch-free) ----------------------------------------------------------------------


def test_every_run_of_the_plan_carries_its_regions():
    from brushwork.engine.plan import ModelFacts, plan
    from brushwork.recipe import Recipe, Region

    tiny = ModelFacts(family="sd15", sample_size=32, vae_scale=2, unet_channels=4)
    regions = [Region(mask="l.png", prompt="a sky", start=0.5), Region(mask="r.png", prompt="grass", weight=0)]
    base = dict(prompt="a wall", steps=4, seed=7, sampler="Euler", cfg=5.0, regions=regions)
    small = plan(Recipe(width=64, height=64, **base), tiny)
    assert [r.steps for r in small.regions.items] == [(2, 3), ()]  # weight 0 acts nowhere
    big = plan(Recipe(width=256, height=64, **base), tiny)  # tiled: a base pass of 4 steps, a refine of 1
    assert big.path == "tiled" and big.sub.regions.items[0].steps == (2, 3) and big.regions.items[0].steps == ()
    crop = plan(Recipe(width=192, height=160, init_image="a.png", mask="m.png", **base), tiny,
                mask_spans=((60, 30), (100, 30)))
    assert crop.sub.regions.window == (crop.crop.x, crop.crop.y, crop.crop.width, crop.crop.height)
    json.dumps(crop.to_dict())  # brushwork plan --json


def test_brushwork_plan_lists_the_regions(tmp_path, capsys):
    path = tmp_path / "r.json"
    path.write_text(json.dumps({"prompt": "a wall", "width": 64, "height": 64, "steps": 4,
                                "regions": [{"mask": "m.png", "prompt": "a sky", "start": 0.5}]}))
    assert main(["plan", str(path)]) == 0
    assert "region 0 'a sky': weight 1, steps 0.5-1 -> acts on steps [2, 3] of 4" in capsys.readouterr().out
