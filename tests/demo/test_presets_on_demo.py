"""Every bundled preset on the demo model (the model a new user has): a sensible picture, or a
clear refusal before anything loads (issue 19). Through the real command line, 64x64."""

from __future__ import annotations

import numpy as np
import pytest
from brushwork.cli import main
from brushwork.demo import dataset, measures
from brushwork.presets import list_presets
from PIL import Image


def run_cli(capsys, *args):
    code = main(list(map(str, args)))
    return code, capsys.readouterr().err


def pixels(path) -> np.ndarray:
    with Image.open(path) as image:
        return np.asarray(image.convert("RGB"), np.float32) / 255.0


def test_every_bundled_preset_is_covered_here():
    covered = {"texture-seamless", "live-fast", "depth-to-texture", "inpaint-fix", "sketch-to-image",
               "pose-character"}
    assert {p.name for p in list_presets() if "presets" in p.path.parent.name} <= covered


def test_texture_seamless_gives_the_colour_asked_for_and_tiles(tmp_path, capsys):
    """A colour the model claims (demo.json), with the preset's long suffix and negatives."""
    out = tmp_path / "floor.png"
    code, err = run_cli(capsys, "generate", "blue tile floor", "--preset", "texture-seamless", "--seed", 1,
                        "--out", out)
    assert code == 0, err
    assert "texture-seamless" in err and "the demo model runs with its own" in err
    image = pixels(out)
    assert image.shape == (64, 64, 3)
    assert measures.colour_name(image) == "blue", measures.mean_rgb(image)
    assert (image.max(axis=-1) < 0.15).mean() < 0.3  # the suffix does not turn it dark


def test_live_fast_says_it_uses_the_demo_s_own_sampling(tmp_path, capsys):
    out = tmp_path / "live.png"
    code, err = run_cli(capsys, "generate", "blue tiles", "--preset", "live-fast", "--seed", 2, "--out", out)
    assert code == 0, err
    assert "made for a few-step model" in err
    from brushwork.metadata import read_metadata

    recipe = read_metadata(out).recipe
    assert recipe.sampler == "Euler a" and recipe.steps == 20 and (recipe.width, recipe.height) == (64, 64)
    assert measures.colour_name(pixels(out)) == "blue"


def test_depth_to_texture_follows_the_depth_map(tmp_path, capsys):
    y, x = np.mgrid[0:64, 0:64] / 64.0
    depth = (((x - 0.5) ** 2 + (y - 0.5) ** 2) < 0.3**2).astype(np.float32)
    dataset.depth_to_pil(depth).save(tmp_path / "depth.png")
    out = tmp_path / "shape.png"
    code, err = run_cli(capsys, "generate", "yellow checker", "--preset", "depth-to-texture", "--seed", 1,
                        "--control", f"depth={tmp_path / 'depth.png'}", "--out", out)
    assert code == 0, err
    image = pixels(out)
    inside, outside = image[depth > 0.5].mean(), image[depth < 0.5].mean()
    assert inside > outside + 0.15, (inside, outside)  # the shape stands out from the dark backdrop


def test_inpaint_fix_keeps_the_outside(tmp_path, capsys):
    rng = np.random.default_rng(0)
    init = dataset.texture_image("white", "tiles", 64, rng)
    dataset.to_pil(init).save(tmp_path / "init.png")
    mask = np.zeros((64, 64), np.float32)
    mask[20:44, 20:44] = 1
    dataset.mask_to_pil(mask).save(tmp_path / "mask.png")
    out = tmp_path / "fixed.png"
    code, err = run_cli(capsys, "generate", "red bricks", "--preset", "inpaint-fix", "--seed", 1,
                        "--init", tmp_path / "init.png", "--mask", tmp_path / "mask.png", "--out", out)
    assert code == 0, err
    image = pixels(out)
    far = np.ones((64, 64), bool)
    far[8:56, 8:56] = False  # beyond the grown and feathered mask
    assert np.abs(image - np.asarray(dataset.to_pil(init), np.float32) / 255.0)[far].max() <= 2 / 255


@pytest.mark.parametrize("preset, control, match", [
    ("sketch-to-image", None, "needs its control picture"),
    ("sketch-to-image", "scribble", "the demo model has no scribble ControlNet"),
    ("pose-character", None, "needs its control picture"),
    ("pose-character", "pose", "the demo model has no pose ControlNet"),
])
def test_presets_the_demo_cannot_serve_are_refused_clearly(tmp_path, capsys, preset, control, match):
    args = ["generate", "a figure", "--preset", preset, "--out", tmp_path / "o.png"]
    if control:
        Image.new("RGB", (64, 64), "white").save(tmp_path / "c.png")
        args += ["--control", f"{control}={tmp_path / 'c.png'}"]
    code, err = run_cli(capsys, *args)
    lines = [line for line in err.splitlines() if line.startswith("brushwork: error: ")]
    assert code == 2 and len(lines) == 1 and match in lines[0], err
    assert not (tmp_path / "o.png").exists()
