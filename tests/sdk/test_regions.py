"""Regions on tiny SD 1.5 / SDXL: the blended UNet against diffusers' own pipeline, and through the Studio
(txt2img, inpaint, ControlNet, the tiled path), with the unhappy paths before any model loads."""

from __future__ import annotations

from types import SimpleNamespace

import numpy as np
import pytest
import torch
from brushwork import Control, Recipe
from brushwork.errors import InputImageError, RecipeError
from brushwork.recipe import Region
from PIL import Image
from test_engine_support import SIZE, gradient, module_studio, pixels, recipe, square_mask, write_png

pytestmark = pytest.mark.xdist_group("regions")

BASE = "a red apple on a table"
OTHER = "a blue car in the snow"


@pytest.fixture(scope="module")
def studio(tmp_path_factory):
    return module_studio(tmp_path_factory)


def _mask(path, size=(SIZE, SIZE), box=None, fill=255):
    """A region mask: ``box`` white on black, or the whole picture ``fill``."""
    img = Image.new("L", size, 0 if box else fill)
    if box:
        img.paste(255, box)
    return write_png(path, img)


@pytest.fixture(scope="module")
def masks(tmp_path_factory):
    d = tmp_path_factory.mktemp("region-masks")
    half = SIZE // 2
    return {"white": _mask(d / "white.png"), "black": _mask(d / "black.png", fill=0),
            "left": _mask(d / "left.png", box=(0, 0, half, SIZE)),
            "outside": _mask(d / "outside.png", box=(0, 0, SIZE, 12)),  # above the inpaint square
            "init": write_png(d / "init.png", gradient(seed=1)),
            "inpaint": write_png(d / "inpaint.png", square_mask()),
            "control": write_png(d / "control.png", gradient(seed=2).transpose(0))}


# ---- against diffusers: the stand-in UNet in diffusers' own pipeline ------------------------------


@pytest.fixture(scope="module")
def sd15_pipe(tiny_models):
    from diffusers import EulerDiscreteScheduler, StableDiffusionPipeline

    pipe = StableDiffusionPipeline.from_pretrained(str(tiny_models.sd15), safety_checker=None,
                                                   requires_safety_checker=False)
    pipe.scheduler = EulerDiscreteScheduler.from_config(pipe.scheduler.config)  # deterministic steps
    pipe.set_progress_bar_config(disable=True)
    return pipe


def _job(pipe, regions: list[Region], mask_tensors: list[torch.Tensor], *, steps: int, family: str = "sd15",
         negative: str = ""):
    """What run_one hands regional(): the pipe, a plan with its regions, the masks and conditionings."""
    from brushwork.engine.regions import Regions, encode_regions
    from brushwork.engine.regions_plan import plan_regions

    rec = Recipe(prompt=BASE, negative_prompt=negative, regions=regions, width=SIZE, height=SIZE, steps=steps)
    plan = SimpleNamespace(regions=plan_regions(rec, steps), height=SIZE, width=SIZE, vae_scale=8)
    return SimpleNamespace(pipe=pipe, plan=plan, regions=Regions(torch.stack(mask_tensors),
                                                                 encode_regions(pipe, rec, family)))


def _run(pipe, prompt: str, *, steps: int = 4, job=None, latents: list | None = None, **kw):
    from brushwork.engine.regions import regional

    def keep(_pipe, _i, _t, state):
        latents.append(state["latents"].clone())
        return state

    call = dict(prompt=prompt, num_inference_steps=steps, guidance_scale=5.0, height=SIZE, width=SIZE,
                generator=torch.Generator("cpu").manual_seed(7), output_type="np", **kw)
    if latents is not None:
        call["callback_on_step_end"] = keep
    with torch.inference_mode():
        if job is None:
            return pipe(**call).images[0]
        with regional(job):
            return pipe(**call).images[0]


def _full(value: float) -> torch.Tensor:
    return torch.full((1, SIZE, SIZE), value)


def test_white_region_is_the_pipeline_with_the_regions_prompt(sd15_pipe):
    job = _job(sd15_pipe, [Region(mask="m.png", prompt=OTHER)], [_full(1.0)], steps=4)
    blended = _run(sd15_pipe, BASE, job=job)
    assert sd15_pipe.unet.__class__.__name__ == "UNet2DConditionModel"  # the real UNet is back
    reference = _run(sd15_pipe, OTHER)
    base = _run(sd15_pipe, BASE)
    # one batched UNet call [uncond, base, region] vs diffusers' [uncond, prompt]: float noise only
    assert np.abs(blended - reference).max() < 1e-4
    assert np.abs(base - reference).max() > 1e-2  # the prompts do differ


def test_black_region_is_the_base_prompt_run(sd15_pipe):
    job = _job(sd15_pipe, [Region(mask="m.png", prompt=OTHER)], [_full(0.0)], steps=4)
    np.testing.assert_array_equal(_run(sd15_pipe, BASE, job=job), _run(sd15_pipe, BASE))


def test_half_weight_blends_the_two_predictions(sd15_pipe):
    """Weight 0.5 everywhere: eps = (eps_base + eps_region) / 2 at every step; checked on the
    UNet's output directly (both prompts as diffusers encodes them)."""
    from brushwork.engine.regions import RegionalUNet

    job = _job(sd15_pipe, [Region(mask="m.png", prompt=OTHER, weight=0.5)], [_full(1.0)], steps=4)
    unet = sd15_pipe.unet
    stand_in = RegionalUNet(unet, job.regions, job.plan)
    x = torch.randn(2, 4, SIZE // 8, SIZE // 8, generator=torch.Generator().manual_seed(0))
    neg, base = sd15_pipe.encode_prompt(BASE, "cpu", 1, True, "")[::-1]
    other = sd15_pipe.encode_prompt(OTHER, "cpu", 1, False)[0]
    with torch.inference_mode():
        out = stand_in(x, torch.tensor(999), torch.cat([neg, base]), return_dict=False)[0]
        plain = unet(x, 999, torch.cat([neg, base])).sample
        region = unet(x, 999, torch.cat([neg, other])).sample
    expected = torch.cat([plain[:1], (plain[1:] + region[1:]) / 2])
    assert torch.allclose(out, expected, atol=1e-5)


def test_step_range_acts_only_on_its_steps(sd15_pipe):
    """A region on the last half of 4 Euler steps: the latents after steps 0 and 1 are the base
    run's (a step's latents depend only on the predictions so far), later ones are not; a
    full-range region changes the very first step."""
    region = Region(mask="m.png", prompt=OTHER, start=0.5, end=1.0)
    base, late, full = [], [], []
    _run(sd15_pipe, BASE, latents=base)
    _run(sd15_pipe, BASE, job=_job(sd15_pipe, [region], [_full(1.0)], steps=4), latents=late)
    _run(sd15_pipe, BASE, job=_job(sd15_pipe, [Region(mask="m.png", prompt=OTHER)], [_full(1.0)], steps=4),
         latents=full)
    assert torch.equal(late[0], base[0]) and torch.equal(late[1], base[1])
    assert not torch.allclose(late[2], base[2], atol=1e-4)
    assert not torch.allclose(full[0], base[0], atol=1e-4)


def test_region_negative_prompt_changes_only_the_unconditional_half(sd15_pipe):
    from brushwork.engine.regions import RegionalUNet

    job = _job(sd15_pipe, [Region(mask="m.png", prompt=BASE, negative_prompt="blurry")], [_full(1.0)], steps=4)
    stand_in = RegionalUNet(sd15_pipe.unet, job.regions, job.plan)
    x = torch.randn(2, 4, SIZE // 8, SIZE // 8, generator=torch.Generator().manual_seed(1))
    neg, base = sd15_pipe.encode_prompt(BASE, "cpu", 1, True, "")[::-1]
    blurry = sd15_pipe.encode_prompt(BASE, "cpu", 1, True, "blurry")[1]
    with torch.inference_mode():
        out = stand_in(x, torch.tensor(500), torch.cat([neg, base]), return_dict=False)[0]
        expected = sd15_pipe.unet(x, 500, torch.cat([blurry, base])).sample
    assert torch.allclose(out, expected, atol=1e-5)


# ---- through the Studio ------------------------------------------------------------------------------


def test_studio_white_region_is_the_regions_prompt(studio, tiny_models, masks):
    with_region = studio.generate(recipe(tiny_models.sd15, regions=[Region(mask=masks["white"], prompt=OTHER)]))
    plain = studio.generate(recipe(tiny_models.sd15, prompt=OTHER))
    base = studio.generate(recipe(tiny_models.sd15))
    assert np.abs(pixels(with_region.images[0]) - pixels(plain.images[0])).max() <= 1
    assert np.abs(pixels(base.images[0]) - pixels(plain.images[0])).max() > 1
    # the recipe (PNG metadata, rerun) keeps the region and its mask's hash
    assert with_region.recipe.regions[0].prompt == OTHER
    assert with_region.hashes["regions[0].mask"] == with_region.recipe.regions[0].mask.split(":", 1)[1]


def test_studio_left_region_changes_the_picture(studio, tiny_models, masks):
    left = studio.generate(recipe(tiny_models.sd15, regions=[Region(mask=masks["left"], prompt=OTHER)])).images[0]
    base = studio.generate(recipe(tiny_models.sd15)).images[0]
    assert np.abs(pixels(left) - pixels(base)).mean() > 0.5


def test_region_outside_the_inpaint_mask_changes_nothing_outside_it(studio, tiny_models, masks):
    init = Image.open(masks["init"]).convert("RGB")
    keep = np.asarray(Image.open(masks["inpaint"]).convert("L")) < 128
    for model in (tiny_models.sd15, tiny_models.sd15_inpaint):
        for region_mask in (masks["outside"], masks["left"]):  # outside it, and across its edge
            out = studio.generate(recipe(model, init_image=masks["init"], mask=masks["inpaint"], strength=0.8,
                                         mask_grow=0, regions=[Region(mask=region_mask, prompt=OTHER)])).images[0]
            assert np.array_equal(pixels(out)[keep], pixels(init)[keep]), (model, region_mask)
    across = studio.generate(recipe(tiny_models.sd15, init_image=masks["init"], mask=masks["inpaint"], strength=0.8,
                                    regions=[Region(mask=masks["left"], prompt=OTHER)])).images[0]
    plain = studio.generate(recipe(tiny_models.sd15, init_image=masks["init"], mask=masks["inpaint"],
                                   strength=0.8)).images[0]
    assert np.abs(pixels(across)[~keep] - pixels(plain)[~keep]).mean() > 0.1  # it acts inside the mask


def test_img2img_with_a_region(studio, tiny_models, masks):
    out = studio.generate(recipe(tiny_models.sd15, init_image=masks["init"], strength=0.6,
                                 regions=[Region(mask=masks["left"], prompt=OTHER)])).images[0]
    plain = studio.generate(recipe(tiny_models.sd15, init_image=masks["init"], strength=0.6)).images[0]
    assert np.abs(pixels(out) - pixels(plain)).mean() > 0.1


def test_sdxl_white_region_is_the_regions_prompt(studio, tiny_models, masks):
    """SDXL: the region pass carries its own pooled embedding (text_embeds) too."""
    with_region = studio.generate(recipe(tiny_models.sdxl, regions=[Region(mask=masks["white"], prompt=OTHER)]))
    plain = studio.generate(recipe(tiny_models.sdxl, prompt=OTHER))
    base = studio.generate(recipe(tiny_models.sdxl))
    assert np.abs(pixels(with_region.images[0]) - pixels(plain.images[0])).max() <= 1
    assert np.abs(pixels(base.images[0]) - pixels(plain.images[0])).max() > 1


def test_sdxl_region_with_own_negative_runs(studio, tiny_models, masks):
    out = studio.generate(recipe(tiny_models.sdxl, negative_prompt="dark",
                                 regions=[Region(mask=masks["left"], prompt=OTHER, negative_prompt="blurry",
                                                 start=0.0, end=0.5)])).images[0]
    assert out.size == (SIZE, SIZE)


def test_controlnet_with_regions(studio, tiny_models, masks):
    control = Control(kind="depth", image=masks["control"], model=str(tiny_models.controlnets["depth"]))
    with_region = studio.generate(recipe(tiny_models.sd15, controls=[control],
                                         regions=[Region(mask=masks["left"], prompt=OTHER)])).images[0]
    plain = studio.generate(recipe(tiny_models.sd15, controls=[control])).images[0]
    assert np.abs(pixels(with_region) - pixels(plain)).mean() > 0.1


def test_tiled_path_white_region_is_the_regions_prompt(studio, tiny_models, tmp_path):
    """576x64 takes the tiled path (base pass, then tiles): the masks follow both."""
    white = _mask(tmp_path / "wide-white.png", size=(576, 64))
    wide = dict(width=576, height=64)
    with_region = studio.generate(recipe(tiny_models.sd15, **wide, regions=[Region(mask=white, prompt=OTHER)]))
    plain = studio.generate(recipe(tiny_models.sd15, **wide, prompt=OTHER))
    assert np.abs(pixels(with_region.images[0]) - pixels(plain.images[0])).max() <= 1
    left = _mask(tmp_path / "wide-left.png", size=(576, 64), box=(0, 0, 288, 64))
    halves = studio.generate(recipe(tiny_models.sd15, **wide, regions=[Region(mask=left, prompt=OTHER)])).images[0]
    assert halves.size == (576, 64)


def test_large_inpaint_crop_with_a_region_keeps_the_outside(studio, tiny_models, tmp_path):
    size = (576, 64)
    init = write_png(tmp_path / "wide-init.png", gradient(size=576).crop((0, 0, 576, 64)))
    inpaint = Image.new("L", size, 0)
    inpaint.paste(255, (400, 16, 460, 48))
    mask = write_png(tmp_path / "wide-mask.png", inpaint)
    region = _mask(tmp_path / "wide-region.png", size=size, box=(380, 0, 576, 64))
    out = studio.generate(recipe(tiny_models.sd15, width=576, height=64, init_image=init, mask=mask, strength=0.8,
                                 regions=[Region(mask=region, prompt=OTHER)])).images[0]
    keep = np.asarray(inpaint) < 128
    assert np.array_equal(pixels(out)[keep], pixels(Image.open(init))[keep])


def test_mask_with_the_pictures_proportions_is_resized(studio, tiny_models, tmp_path):
    small = _mask(tmp_path / "small-white.png", size=(16, 16))
    out = studio.generate(recipe(tiny_models.sd15, regions=[Region(mask=small, prompt=OTHER)])).images[0]
    plain = studio.generate(recipe(tiny_models.sd15, prompt=OTHER)).images[0]
    assert np.abs(pixels(out) - pixels(plain)).max() <= 1


# ---- unhappy paths: clear errors before any model loads ----------------------------------------------


def _fresh_studio(tmp_path, monkeypatch):
    from brushwork.engine import Studio

    monkeypatch.setenv("BRUSHWORK_HOME", str(tmp_path / "home"))
    return Studio(device="cpu")


def test_missing_mask_file_fails_before_loading(tmp_path, monkeypatch, tiny_models):
    studio = _fresh_studio(tmp_path, monkeypatch)
    with pytest.raises(InputImageError, match="no-such-mask"):
        studio.generate(recipe(tiny_models.sd15, regions=[Region(mask=str(tmp_path / "no-such-mask.png"),
                                                                 prompt=OTHER)]))
    assert studio.pipelines.base_loads == 0


def test_mask_of_other_proportions_is_refused_before_loading(tmp_path, monkeypatch, tiny_models):
    studio = _fresh_studio(tmp_path, monkeypatch)
    tall = _mask(tmp_path / "tall.png", size=(32, 64))
    with pytest.raises(InputImageError, match=r"regions\[0\]\.mask.*32x64.*proportions"):
        studio.generate(recipe(tiny_models.sd15, regions=[Region(mask=tall, prompt=OTHER)]))
    assert studio.pipelines.base_loads == 0


def test_corrupt_mask_is_refused_before_loading(tmp_path, monkeypatch, tiny_models):
    studio = _fresh_studio(tmp_path, monkeypatch)
    bad = tmp_path / "bad.png"
    bad.write_bytes(b"not a picture")
    with pytest.raises(InputImageError, match=r"regions\[0\]\.mask"):
        studio.generate(recipe(tiny_models.sd15, regions=[Region(mask=str(bad), prompt=OTHER)]))
    assert studio.pipelines.base_loads == 0


def test_empty_region_prompt_is_a_recipe_error(tiny_models, masks):
    with pytest.raises(RecipeError, match=r"regions\[0\]\.prompt"):
        recipe(tiny_models.sd15, regions=[Region(mask=masks["white"], prompt="  ")]).validate()


def test_too_many_loras_with_regions_are_refused_before_loading(tmp_path, monkeypatch, tiny_models, masks):
    from brushwork import Lora

    studio = _fresh_studio(tmp_path, monkeypatch)
    many = [Lora(name=f"lora-{i}") for i in range(9)]
    with pytest.raises(RecipeError, match=r"regions\[0\]\.loras.*9 different LoRAs"):
        studio.generate(recipe(tiny_models.sd15, loras=many[:5],
                               regions=[Region(mask=masks["white"], prompt=OTHER, loras=many[5:])]))
    assert studio.pipelines.base_loads == 0


def test_a_region_lora_acts_inside_its_mask_only(studio, tiny_models, masks):
    """White mask: the region's prompt with its LoRA is the plain run of that prompt with that LoRA
    (both CFG halves switch to it); black mask: the base run, no LoRA anywhere; and no LoRA stays
    active for the next job."""
    from brushwork import Lora

    lora = [Lora(name=str(tiny_models.lora), weight=1.0)]
    before = studio.generate(recipe(tiny_models.sd15)).images[0]
    white = studio.generate(recipe(tiny_models.sd15, regions=[Region(mask=masks["white"], prompt=OTHER,
                                                                     loras=lora)]))
    plain = studio.generate(recipe(tiny_models.sd15, prompt=OTHER, loras=lora)).images[0]
    without = studio.generate(recipe(tiny_models.sd15, prompt=OTHER)).images[0]
    assert np.abs(pixels(white.images[0]) - pixels(plain)).max() <= 1
    assert np.abs(pixels(plain) - pixels(without)).max() > 1  # the LoRA does change the picture
    assert any(key.startswith("lora:") for key in white.hashes)  # recorded like the recipe's LoRAs
    black = studio.generate(recipe(tiny_models.sd15, regions=[Region(mask=masks["black"], prompt=OTHER,
                                                                     loras=lora)])).images[0]
    assert np.abs(pixels(black) - pixels(before)).max() <= 1
    after = studio.generate(recipe(tiny_models.sd15)).images[0]
    assert np.array_equal(pixels(after), pixels(before))
    # a <lora:> tag in the region's prompt is the same as Region.loras (and leaves the prompt)
    tagged = studio.generate(recipe(tiny_models.sd15, regions=[Region(mask=masks["white"],
                                                                      prompt=f"{OTHER} <lora:{tiny_models.lora}:1>")]))
    assert tagged.recipe.regions[0].prompt == OTHER and tagged.recipe.regions[0].loras[0].weight == 1.0
    assert np.array_equal(pixels(tagged.images[0]), pixels(white.images[0]))


def test_a_left_half_mask_acts_on_the_left_half_of_the_prediction(sd15_pipe):
    """Orientation and locality at one UNet call: left latent columns are the region's prediction,
    right ones the base's, exactly (the mask's width x height is the picture's, not transposed)."""
    from brushwork.engine.regions import RegionalUNet

    left = torch.zeros(1, SIZE, SIZE)
    left[..., : SIZE // 2] = 1.0
    job = _job(sd15_pipe, [Region(mask="m.png", prompt=OTHER)], [left], steps=4)
    stand_in = RegionalUNet(sd15_pipe.unet, job.regions, job.plan)
    x = torch.randn(2, 4, SIZE // 8, SIZE // 8, generator=torch.Generator().manual_seed(2))
    neg, base = sd15_pipe.encode_prompt(BASE, "cpu", 1, True, "")[::-1]
    other = sd15_pipe.encode_prompt(OTHER, "cpu", 1, False)[0]
    with torch.inference_mode():
        out = stand_in(x, torch.tensor(700), torch.cat([neg, base]), return_dict=False)[0]
        plain = sd15_pipe.unet(x, 700, torch.cat([neg, base])).sample
        region = sd15_pipe.unet(x, 700, torch.cat([neg, other])).sample
    half = SIZE // 16
    assert torch.allclose(out[1:, ..., :half], region[1:, ..., :half], atol=1e-5)
    assert torch.allclose(out[1:, ..., half:], plain[1:, ..., half:], atol=1e-5)
    assert torch.allclose(out[:1], plain[:1], atol=1e-5)  # no own negative: the base's unconditional half


@pytest.mark.parametrize("sampler", ["Heun", "DPM++ 2M", "Euler a", "UniPC"])
def test_steps_are_counted_as_the_scheduler_takes_them(sampler, tiny_models):
    """The stand-in counts a step per new timestep: Heun's schedule repeats each timestep for its
    second call, so 4 Heun steps (7 UNet calls) still count 4, as plan.control_steps means."""
    import json

    from brushwork.engine.regions import RegionalUNet
    from brushwork.engine.samplers import make_scheduler

    config = json.loads((tiny_models.sd15 / "scheduler" / "scheduler_config.json").read_text())
    scheduler = make_scheduler(sampler, config)
    scheduler.set_timesteps(4)
    counter = RegionalUNet.__new__(RegionalUNet)
    counter.step, counter._last_t = -1, None
    seen = []
    for t in scheduler.timesteps:
        counter._count_step(t)
        seen.append(counter.step)
    assert seen[-1] == 3 and seen == sorted(seen), seen


@pytest.mark.parametrize("family", ["sd15", "sdxl"])
def test_regions_with_a_reference_image(studio, tiny_models, masks, family):
    """IP-Adapter image embeddings ride in added_cond_kwargs: each region pass takes its CFG half's."""
    from brushwork.recipe import Reference
    from brushwork.testing.tiny_ip_adapter import SD15_ADAPTER, SDXL_ADAPTER, ensure_tiny_ip_adapters

    adapter = ensure_tiny_ip_adapters(tiny_models.root)[SD15_ADAPTER if family == "sd15" else SDXL_ADAPTER]
    reference = Reference(image=masks["control"], weight=0.8, model=str(adapter))
    model = tiny_models.sd15 if family == "sd15" else tiny_models.sdxl
    with_region = studio.generate(recipe(model, references=[reference],
                                         regions=[Region(mask=masks["white"], prompt=OTHER)])).images[0]
    plain = studio.generate(recipe(model, prompt=OTHER, references=[reference])).images[0]
    assert np.abs(pixels(with_region) - pixels(plain)).max() <= 1
