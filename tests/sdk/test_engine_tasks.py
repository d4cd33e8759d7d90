"""img2img, inpaint (both kinds of checkpoint), ControlNets and task switching on tiny SD 1.5."""

from __future__ import annotations

import numpy as np
import pytest
from brushwork import Control
from test_engine_support import gradient, mean_diff, module_studio, pixels, recipe, square_mask, write_png

# One worker runs this whole module, so its tests share one Studio's loaded models.
pytestmark = pytest.mark.xdist_group("engine-tasks")



@pytest.fixture(scope="module")
def studio(tmp_path_factory):
    return module_studio(tmp_path_factory)


@pytest.fixture(scope="module")
def pictures(tmp_path_factory):
    d = tmp_path_factory.mktemp("pictures")
    return {
        "init": write_png(d / "init.png", gradient(seed=1)),
        "mask": write_png(d / "mask.png", square_mask()),
        "control": write_png(d / "control.png", gradient(seed=2).transpose(0)),
        "control2": write_png(d / "control2.png", gradient(seed=3).rotate(90)),
    }


def control(tiny_models, kind="depth", image=None, **kw):
    return Control(kind=kind, image=image, model=str(tiny_models.controlnets[kind]), **kw)


# ---- img2img ---------------------------------------------------------------------------------

def test_img2img_changes_less_at_low_strength(studio, tiny_models, pictures):
    init = pictures["init"]
    from PIL import Image

    original = Image.open(init)
    low = studio.generate(recipe(tiny_models.sd15, init_image=init, strength=0.25, steps=4)).images[0]
    high = studio.generate(recipe(tiny_models.sd15, init_image=init, strength=0.9, steps=4)).images[0]
    assert mean_diff(low, original) < mean_diff(high, original)
    assert mean_diff(low, original) > 0  # it did something


def test_img2img_progress_counts_the_steps_it_runs(studio, tiny_models, pictures):
    seen = []
    studio.generate(recipe(tiny_models.sd15, init_image=pictures["init"], strength=0.5, steps=4),
                    on_progress=seen.append)
    assert [(p.step, p.total) for p in seen] == [(1, 2), (2, 2)]  # strength 0.5 of 4 steps


def test_img2img_resizes_init_to_recipe_size(studio, tiny_models, tmp_path):
    big = write_png(tmp_path / "big.png", gradient(size=96))
    out = studio.generate(recipe(tiny_models.sd15, init_image=big, strength=0.5)).images[0]
    assert out.size == (64, 64)


# ---- inpaint ---------------------------------------------------------------------------------

@pytest.mark.parametrize("which", ["sd15", "sd15_inpaint"])
def test_inpaint_keeps_every_pixel_outside_the_mask(studio, tiny_models, pictures, which):
    from PIL import Image

    result = studio.generate(recipe(getattr(tiny_models, which), init_image=pictures["init"],
                                    mask=pictures["mask"], strength=1.0, mask_feather=3))
    out, original = pixels(result.images[0]), pixels(Image.open(pictures["init"]))
    outside = np.asarray(square_mask()) == 0
    assert np.array_equal(out[outside], original[outside])
    assert np.abs(out[~outside] - original[~outside]).mean() > 1.0  # the masked area was repainted


def test_an_inpainting_checkpoint_also_does_txt2img_and_img2img(studio, tiny_models, pictures):
    model = tiny_models.sd15_inpaint
    a = studio.generate(recipe(model)).images[0]
    b = studio.generate(recipe(model)).images[0]
    other = studio.generate(recipe(model, seed=99)).images[0]
    assert a.size == (64, 64) and np.array_equal(pixels(a), pixels(b)) and mean_diff(a, other) > 1.0
    # img2img: the whole picture is masked, the start is the noised init (random weights say
    # nothing about how close to the init it stays, so only that strength matters is checked)
    low = studio.generate(recipe(model, init_image=pictures["init"], strength=0.25, steps=4)).images[0]
    high = studio.generate(recipe(model, init_image=pictures["init"], strength=0.9, steps=4)).images[0]
    assert low.size == (64, 64) and mean_diff(low, high) > 0.5


def test_mask_grow_widens_the_repainted_area(studio, tiny_models, pictures):
    from PIL import Image

    result = studio.generate(recipe(tiny_models.sd15, init_image=pictures["init"], mask=pictures["mask"],
                                    strength=1.0, mask_grow=4, mask_feather=0))
    out, original = pixels(result.images[0]), pixels(Image.open(pictures["init"]))
    ring = (np.asarray(square_mask(box=(12, 12, 52, 52))) > 0) & (np.asarray(square_mask()) == 0)
    far = np.asarray(square_mask(box=(12, 12, 52, 52))) == 0
    assert np.abs(out[ring] - original[ring]).mean() > 1.0
    assert np.array_equal(out[far], original[far])


# ---- ControlNet ------------------------------------------------------------------------------

def test_controlnet_single_and_multi_change_the_image(studio, tiny_models, pictures):
    none = studio.generate(recipe(tiny_models.sd15)).images[0]
    one = studio.generate(recipe(tiny_models.sd15,
                                 controls=[control(tiny_models, image=pictures["control"])])).images[0]
    two = studio.generate(recipe(tiny_models.sd15, controls=[
        control(tiny_models, image=pictures["control"]),
        control(tiny_models, "canny", image=pictures["control2"], strength=0.8)])).images[0]
    assert mean_diff(one, none) > 1.0
    assert mean_diff(two, one) > 1.0


def test_controlnet_strength_zero_is_like_none(studio, tiny_models, pictures):
    none = studio.generate(recipe(tiny_models.sd15)).images[0]
    zero = studio.generate(recipe(tiny_models.sd15, controls=[
        control(tiny_models, image=pictures["control"], strength=0.0)])).images[0]
    assert mean_diff(zero, none) < 0.5


@pytest.mark.slow
def test_controlnet_start_end_are_honoured(studio, tiny_models, pictures):
    img = pictures["control"]
    none = studio.generate(recipe(tiny_models.sd15, steps=4)).images[0]
    full = studio.generate(recipe(tiny_models.sd15, steps=4, controls=[control(tiny_models, image=img)])).images[0]
    late = studio.generate(recipe(tiny_models.sd15, steps=4, controls=[
        control(tiny_models, image=img, start=0.5, end=1.0)])).images[0]
    # end before the first step finishes: the ControlNet never acts
    never = studio.generate(recipe(tiny_models.sd15, steps=4, controls=[
        control(tiny_models, image=img, start=0.0, end=0.1)])).images[0]
    assert mean_diff(never, none) < 0.5
    assert mean_diff(late, full) > 0.5
    assert mean_diff(late, none) > 0.5


def test_img2img_with_controlnet(studio, tiny_models, pictures):
    plain = studio.generate(recipe(tiny_models.sd15, init_image=pictures["init"], strength=0.7)).images[0]
    with_cn = studio.generate(recipe(tiny_models.sd15, init_image=pictures["init"], strength=0.7,
                                     controls=[control(tiny_models, image=pictures["control"])])).images[0]
    assert mean_diff(plain, with_cn) > 0.5


def test_inpaint_with_inpaint_controlnet_keeps_outside(studio, tiny_models, pictures):
    from PIL import Image

    result = studio.generate(recipe(tiny_models.sd15, init_image=pictures["init"], mask=pictures["mask"],
                                    strength=1.0, controls=[control(tiny_models, "inpaint")]))
    out, original = pixels(result.images[0]), pixels(Image.open(pictures["init"]))
    outside = np.asarray(square_mask()) == 0
    assert np.array_equal(out[outside], original[outside])
    # an inpaint control (a tensor) and a picture control together
    both = studio.generate(recipe(tiny_models.sd15, init_image=pictures["init"], mask=pictures["mask"],
                                  strength=1.0, controls=[control(tiny_models, "inpaint"),
                                                          control(tiny_models, image=pictures["control"])]))
    assert np.array_equal(pixels(both.images[0])[outside], original[outside])
    assert mean_diff(both.images[0], result.images[0]) > 0.1


# ---- caching -------------------------------------------------------------------------------

@pytest.mark.slow
def test_task_switch_reuses_the_loaded_weights(tmp_path_factory, tiny_models, pictures):
    studio = module_studio(tmp_path_factory)
    r = lambda **kw: recipe(tiny_models.sd15, **kw)  # noqa: E731
    studio.generate(r())
    studio.generate(r(init_image=pictures["init"], strength=0.5))
    studio.generate(r(init_image=pictures["init"], mask=pictures["mask"]))
    studio.generate(r(controls=[control(tiny_models, image=pictures["control"])]))
    studio.generate(r(controls=[control(tiny_models, image=pictures["control"])]))
    assert studio.pipelines.base_loads == 1
    assert studio.pipelines.controlnet_loads == 1
    (base,) = studio.pipelines._bases.values()
    derived = list(base.derived.values())
    assert len(derived) == 4  # txt2img, img2img, inpaint, txt2img+ControlNet
    assert all(p.unet is base.pipe.unet and p.text_encoder is base.pipe.text_encoder for p in derived)
    models = studio.loaded_models()
    assert {m["kind"] for m in models} == {"model", "controlnet"}
    (net,) = [m for m in models if m["kind"] == "controlnet"]
    assert studio.unload(net["key"]) == 1  # and the pipelines holding it go with it
    assert len(base.derived) == 3
    studio.generate(r(controls=[control(tiny_models, image=pictures["control"])]))
    assert studio.pipelines.controlnet_loads == 2
    assert studio.unload() == 2 and studio.loaded_models() == []
    studio.generate(r())
    assert studio.pipelines.base_loads == 2


def test_vae_override_changes_output_and_is_recorded(studio, tiny_models):
    plain = studio.generate(recipe(tiny_models.sd15))
    other = studio.generate(recipe(tiny_models.sd15, vae=str(tiny_models.vae)))
    assert mean_diff(plain.images[0], other.images[0]) > 1.0
    assert "vae" in other.hashes and "vae" not in plain.hashes
    back = studio.generate(recipe(tiny_models.sd15)).images[0]  # the model's own VAE is restored
    assert np.array_equal(pixels(back), pixels(plain.images[0]))


@pytest.mark.slow
def test_another_model_config_runs_every_task(tmp_path_factory, tiny_models, pictures):
    """Not only the shapes the shared set uses: 3 UNet levels, a VAE that downsamples by 4."""
    from brushwork.testing.tiny import build_tiny_controlnet, build_tiny_sd15

    root = tmp_path_factory.mktemp("other-config")
    model = build_tiny_sd15(
        root / "m", seed=3,
        unet=dict(block_out_channels=(32, 32, 64), down_block_types=("DownBlock2D", "CrossAttnDownBlock2D",
                  "CrossAttnDownBlock2D"), up_block_types=("CrossAttnUpBlock2D", "CrossAttnUpBlock2D",
                  "UpBlock2D"), layers_per_block=1, attention_head_dim=4),
        vae=dict(block_out_channels=(32, 32, 64), down_block_types=("DownEncoderBlock2D",) * 3,
                 up_block_types=("UpDecoderBlock2D",) * 3))
    net = build_tiny_controlnet(root / "cn", base=model, conditioning_embedding_out_channels=(16, 16, 32))
    studio = module_studio(tmp_path_factory)
    seen = []
    out = studio.generate(recipe(model), on_progress=seen.append).images[0]
    assert out.size == (64, 64) and seen[-1].preview.size == (16, 16)
    inpainted = studio.generate(recipe(model, init_image=pictures["init"], mask=pictures["mask"])).images[0]
    outside = np.asarray(square_mask()) == 0
    from PIL import Image

    assert np.array_equal(pixels(inpainted)[outside], pixels(Image.open(pictures["init"]))[outside])
    with_cn = studio.generate(recipe(model, controls=[Control(kind="depth", image=pictures["control"],
                                                              model=str(net))])).images[0]
    assert mean_diff(with_cn, out) > 0.5
