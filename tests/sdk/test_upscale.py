"""The upscale step: super-resolution models through spandrel's real loader, tiled, seamless.

The upscalers are tiny random ESRGANs (``brushwork.testing.tiny_upscaler``: Real-ESRGAN's key
layout, 8 features, one block) written as .safetensors / .pth and loaded by spandrel's own
ModelLoader, which detects the architecture and scale from the keys. Their receptive field is
about 18 input pixels, so a tile margin of 20 makes the tiled result the whole-picture result.
"""

from __future__ import annotations

import numpy as np
import pytest
import torch
from brushwork.engine.plan import ModelFacts, plan
from brushwork.engine.upscale import sr_tiled, to_image, to_tensor
from brushwork.engine.upscale_plan import SR_MARGIN, UpscalePlan
from brushwork.errors import UnsafeCheckpointError
from brushwork.models.settings import Settings
from brushwork.models.upscalers import import_spandrel, load_upscaler, resolve_upscaler
from brushwork.recipe import Recipe, Upscale
from brushwork.testing.tiny_upscaler import build_tiny_esrgan
from PIL import Image

# float32 convolutions on different tile shapes pick different summation orders: 1e-5 of [0, 1]
TOLERANCE = 1e-5


@pytest.fixture(scope="module")
def models(tmp_path_factory):
    folder = tmp_path_factory.mktemp("upscalers")
    return {"x2": build_tiny_esrgan(folder / "tiny-x2.safetensors", scale=2),
            "x4": build_tiny_esrgan(folder / "tiny-x4.safetensors", scale=4),
            "pth": build_tiny_esrgan(folder / "tiny-x2.pth", scale=2)}


def picture(width=40, height=32, seed=0) -> torch.Tensor:
    return torch.rand(1, 3, height, width, generator=torch.Generator().manual_seed(seed))


def load(path, **settings):
    s = Settings(**settings)
    return load_upscaler(resolve_upscaler(str(path), s), s)


@pytest.mark.parametrize("name, scale", [("x2", 2), ("x4", 4)])
def test_spandrel_detects_the_tiny_esrgan(models, name, scale):
    upscaler = load(models[name])
    assert (upscaler.architecture, upscaler.scale) == ("ESRGAN", scale)
    out = upscaler.model(picture(24, 16))
    assert out.shape == (1, 3, 16 * scale, 24 * scale)
    assert float(out.std()) > 0.0 and float(out.min()) > 0.0  # not saturated: comparisons below mean something


@pytest.mark.parametrize("name", ["x2", "x4"])
def test_tiled_equals_the_model_on_the_whole_picture(models, name):
    upscaler = load(models[name])
    image = picture()
    whole = upscaler.model(image)
    tiled = sr_tiled(upscaler.model, image, upscaler.scale, tile=16, margin=20)  # 3 x 2 tiles
    assert tiled.shape == whole.shape
    assert float((tiled - whole).abs().max()) < TOLERANCE
    # a margin smaller than the receptive field is not exact: the test can tell
    rough = sr_tiled(upscaler.model, image, upscaler.scale, tile=16, margin=2)
    assert float((rough - whole).abs().max()) > 100 * TOLERANCE


def test_seamless_axes_are_a_torus(models):
    """On a wrap axis the result does not depend on where the picture was cut: upscaling the
    picture rolled by k pixels gives the upscaled picture rolled by k x scale (the edge is like
    any interior place). Off the wrap axis it does depend on it (the edges are edges)."""
    upscaler = load(models["x2"])
    image, s, k = picture(), upscaler.scale, 13
    up = sr_tiled(upscaler.model, image, s, tile=16, margin=20, axes="x")
    rolled = sr_tiled(upscaler.model, torch.roll(image, k, dims=-1), s, tile=16, margin=20, axes="x")
    assert float((rolled - torch.roll(up, k * s, dims=-1)).abs().max()) < TOLERANCE
    plain = sr_tiled(upscaler.model, image, s, tile=16, margin=20)
    plain_rolled = sr_tiled(upscaler.model, torch.roll(image, k, dims=-1), s, tile=16, margin=20)
    assert float((plain_rolled - torch.roll(plain, k * s, dims=-1)).abs().max()) > 100 * TOLERANCE
    # the wrap join is as continuous as the interior: last column -> first column
    seam = float((up[..., 0] - up[..., -1]).abs().mean())
    interior = float((up[..., 1:] - up[..., :-1]).abs().mean())
    assert seam < 2 * interior


def test_pickle_upscaler_needs_the_opt_in(models):
    with pytest.raises(UnsafeCheckpointError, match="pickle"):
        resolve_upscaler(str(models["pth"]), Settings())
    upscaler = load(models["pth"], allow_pickle=True)
    assert (upscaler.architecture, upscaler.scale) == ("ESRGAN", 2)


def test_names_in_model_folders(models, tmp_path):
    root = tmp_path / "webui"
    folder = root / "models" / "ESRGAN"
    folder.mkdir(parents=True)
    build_tiny_esrgan(folder / "4x-Tiny.safetensors", scale=4)
    ref = resolve_upscaler("4x-Tiny", Settings(model_dirs=[root]), allow_paths=False)
    assert ref.path == folder / "4x-Tiny.safetensors"
    from brushwork.errors import ModelNotFoundError

    with pytest.raises(ModelNotFoundError, match="not found"):
        resolve_upscaler("no-such-upscaler", Settings(model_dirs=[root]), allow_paths=False)
    with pytest.raises(ModelNotFoundError, match="paths are not accepted"):
        resolve_upscaler(str(models["x2"]), Settings(), allow_paths=False)


def test_spandrel_loads_without_torchvision():
    """Where torchvision cannot be imported (this install), spandrel still imports, with no
    torchvision module left behind for other libraries to trip on."""
    import importlib.util
    import sys

    spandrel = import_spandrel()
    assert spandrel.ModelLoader is not None
    if importlib.util.find_spec("torchvision") is None:
        assert "torchvision" not in sys.modules


# ---- the plan ----------------------------------------------------------------------------------------


def upscale_recipe(init, **changes) -> Recipe:
    base = dict(init_image=str(init), strength=0.0, width=80, height=64, steps=4, cfg=1.0, sampler="Euler",
                seed=3, upscale=Upscale(model="", factor=2.0))
    base.update(changes)
    return Recipe(**base)


def test_plan_of_an_upscale_alone_and_with_a_refine(tmp_path):
    init = tmp_path / "in.png"
    alone = plan(upscale_recipe(init, upscale=Upscale(factor=3.0)), ModelFacts())
    assert (alone.task, alone.path) == ("upscale", "upscale")
    assert isinstance(alone.upscale, UpscalePlan)
    assert (alone.upscale.width, alone.upscale.height) == (240, 192)
    assert alone.upscale.refine_plan is None and alone.upscale.margin == SR_MARGIN
    refined = plan(upscale_recipe(init, width=256, height=192, upscale=Upscale(factor=2.0, refine=0.5), tiling="x"),
                   ModelFacts.for_family("sd15"))
    sub = refined.upscale.refine_plan
    assert (sub.task, sub.width, sub.height, sub.strength) == ("img2img", 512, 384, 0.5)
    assert sub.seamless_axes == "x" and refined.upscale.axes == "x"
    assert refined.to_dict()["upscale"]["refine_plan"]["width"] == 512


# ---- through the Studio ---------------------------------------------------------------------------


@pytest.fixture(scope="module")
def studio(tmp_path_factory):
    from test_engine_support import module_studio

    return module_studio(tmp_path_factory)


def test_upscale_alone_loads_no_diffusion_model(studio, models, tmp_path):
    src = Image.fromarray((np.random.default_rng(0).random((64, 80, 3)) * 255).astype(np.uint8))
    src.save(tmp_path / "in.png")
    r = upscale_recipe(tmp_path / "in.png", width=80, height=64, upscale=Upscale(model=str(models["x4"]), factor=3.0))
    result = studio.generate(r)
    assert result.images[0].size == (240, 192)
    assert studio.loaded_models() == []  # no pipeline was loaded
    assert result.hashes["upscale.model"]
    # the model's 4x, then Lanczos down to 3x
    upscaler = load(models["x4"])
    expect = to_image(upscaler.model(to_tensor(src))).resize((240, 192), Image.Resampling.LANCZOS)
    diff = np.abs(np.asarray(result.images[0], np.int16) - np.asarray(expect, np.int16))
    assert diff.max() <= 1


def test_refine_runs_on_the_tiny_sd15(studio, models, tiny_models, tmp_path):
    src = Image.fromarray((np.random.default_rng(1).random((64, 64, 3)) * 255).astype(np.uint8))
    src.save(tmp_path / "in.png")
    r = upscale_recipe(tmp_path / "in.png", model=str(tiny_models.sd15), width=64, height=64, prompt="a red apple",
                       upscale=Upscale(model=str(models["x2"]), factor=2.0, refine=0.5))
    result = studio.generate(r)
    assert result.images[0].size == (128, 128)
    unrefined = studio.generate(r.replace(upscale=Upscale(model=str(models["x2"]), factor=2.0)))
    assert not np.array_equal(np.asarray(result.images[0]), np.asarray(unrefined.images[0]))  # the refine ran


def test_a_missing_upscaler_fails_before_the_job_runs(studio, tiny_models, tmp_path):
    from brushwork.errors import ModelNotFoundError

    studio.unload()
    r = Recipe(prompt="a red apple", model=str(tiny_models.sd15), width=64, height=64, steps=2, seed=1,
               upscale=Upscale(model="no-such-upscaler", factor=2.0))
    with pytest.raises(ModelNotFoundError, match="no-such-upscaler"):
        studio.generate(r)
    assert studio.loaded_models() == []  # the diffusion model never loaded


def test_brushwork_plan_shows_the_step(tmp_path, capsys):
    from brushwork.cli import main

    recipe = upscale_recipe(tmp_path / "in.png", prompt="x", upscale=Upscale(factor=2.0, refine=0.5), tiling="x")
    (tmp_path / "r.json").write_text(recipe.to_json())
    assert main(["plan", str(tmp_path / "r.json")]) == 0
    out = capsys.readouterr().out
    assert "upscale x2 to 160x128 Lanczos" in out and "seamless x kept" in out and "the refine runs:" in out


def test_hub_ids_offline_come_from_the_cache(tmp_path, monkeypatch):
    """A hub id resolves to the repo's one .safetensors and loads through huggingface_hub's own
    cache lookup (offline: only what is cached; an uncached repo is one clear line)."""
    from brushwork.errors import ModelNotFoundError
    from huggingface_hub import constants

    cache = tmp_path / "hf"
    monkeypatch.setattr(constants, "HF_HUB_CACHE", str(cache))
    repo = cache / "models--someone--tiny-upscaler"
    commit = "0" * 40
    build_tiny_esrgan(repo / "snapshots" / commit / "2x-tiny.safetensors", scale=2)
    (repo / "refs").mkdir(parents=True)
    (repo / "refs" / "main").write_text(commit)
    offline = Settings(offline=True)
    ref = resolve_upscaler("someone/tiny-upscaler", offline)
    assert (ref.repo, ref.filename) == ("someone/tiny-upscaler", "2x-tiny.safetensors")
    upscaler = load_upscaler(ref, offline)
    assert (upscaler.architecture, upscaler.scale) == ("ESRGAN", 2)
    with pytest.raises(ModelNotFoundError, match="offline"):
        resolve_upscaler("someone/not-downloaded", offline)
