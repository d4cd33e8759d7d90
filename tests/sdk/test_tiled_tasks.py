"""Large img2img, ControlNet and inpaint jobs (engine/tiled.py, tiled_denoise.py, tiled_inpaint.py)
through the real Studio on tiny SD 1.5.

The tiny model's native size is 64 px (a 32-latent-pixel tile, VAE factor 2), so 192x160 takes the
large-image paths. Which path ran is read off the networks themselves: forward hooks record the
spatial size of every real UNet / ControlNet call (no mock: the networks still run).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch
from brushwork import Control
from brushwork.engine.tiled import total_steps
from brushwork.engine.tiled_denoise import denoise_steps
from brushwork.engine.tiles import Tiling
from PIL import Image
from test_engine_support import gradient, last_base, mean_diff, module_studio, pixels, recipe, write_png
from test_seamless import seam_ratio

pytestmark = pytest.mark.xdist_group("engine-tiled")

W, H = 192, 160
TILE = 32  # latent pixels: native 64 px / VAE factor 2
TILES = len(Tiling(H // 2, W // 2, TILE, ""))  # tiles per phase of a W x H job


@pytest.fixture(scope="module")
def studio(tmp_path_factory):
    return module_studio(tmp_path_factory)


def periodic(width=W, height=H):
    """A texture that tiles on both axes (whole periods across each side)."""
    y, x = np.mgrid[0:height, 0:width]
    r = 127 + 90 * np.sin(2 * np.pi * 2 * x / width) * np.cos(2 * np.pi * y / height)
    g = 127 + 90 * np.cos(2 * np.pi * (x / width + 2 * y / height))
    b = 127 + 60 * np.sin(2 * np.pi * 3 * y / height)
    return Image.fromarray(np.stack([r, g, b], -1).astype(np.uint8), "RGB")


def banded(picture: Image.Image) -> Image.Image:
    """The picture with a bright vertical band along its right edge."""
    array = np.asarray(picture).copy()
    array[:, -12:] = (255, 255, 40)
    return Image.fromarray(array, "RGB")


def corner_picture(corner: str) -> Image.Image:
    picture = np.zeros((H, W, 3), np.uint8)
    if corner == "top-left":
        picture[:24, :24] = 255
    elif corner == "bottom-right":
        picture[-24:, -24:] = 255
    return Image.fromarray(picture, "RGB")


def mask_picture(box=None, invert=False) -> Image.Image:
    mask = Image.new("L", (W, H), 255 if invert else 0)
    if box is not None:
        mask.paste(0 if invert else 255, box)
    return mask


@pytest.fixture(scope="module")
def pictures(tmp_path_factory):
    d = tmp_path_factory.mktemp("large-pictures")
    return {
        "init": write_png(d / "init.png", gradient(size=256, seed=1).resize((W, H))),
        "other": write_png(d / "other.png", gradient(size=256, seed=5).rotate(180).resize((W, H))),
        "periodic": write_png(d / "periodic.png", periodic()),
        "banded": write_png(d / "banded.png", banded(gradient(size=256, seed=1).resize((W, H)))),
        "blank": write_png(d / "blank.png", corner_picture("none")),
        "top-left": write_png(d / "tl.png", corner_picture("top-left")),
        "bottom-right": write_png(d / "br.png", corner_picture("bottom-right")),
        "mask": write_png(d / "mask.png", mask_picture((100, 60, 130, 90))),
        "edge-mask": write_png(d / "edge-mask.png", mask_picture((176, 40, 192, 70))),  # touches the right edge
        "big-mask": write_png(d / "big-mask.png", mask_picture((16, 16, W - 16, H - 16))),
        "no-mask": write_png(d / "no-mask.png", mask_picture()),
    }


def large(tiny_models, model=None, **changes):
    base = dict(width=W, height=H, cfg=1.0, steps=2, sampler="Euler", seed=7)
    base.update(changes)
    return recipe(model or tiny_models.sd15, **base)


def control(tiny_models, image, kind="depth", **kw):
    return Control(kind=kind, image=image, model=str(tiny_models.controlnets[kind]), **kw)


class Calls:
    """Records (channels, height, width) of a module's input on every real forward call."""

    def __init__(self, module):
        self.shapes: list[tuple[int, int, int]] = []
        self._handle = module.register_forward_pre_hook(self._hook)

    def _hook(self, _module, args):
        self.shapes.append(tuple(args[0].shape[1:]))

    def close(self):
        self._handle.remove()


def run_counting(studio, recipe_, modules, on_progress=None):
    """Generate with a Calls on each module; returns (image, [Calls, ...])."""
    calls = [Calls(m) for m in modules]
    try:
        image = studio.generate(recipe_, on_progress=on_progress).images[0]
    finally:
        for c in calls:
            c.close()
    return image, calls


def unet(studio, tiny_models, model=None):
    studio.generate(recipe(model or tiny_models.sd15, steps=1))  # loaded (and the LRU's last)
    return last_base(studio).pipe.unet


def controlnet(studio, kind):
    key = next(k for k in studio.pipelines._controlnets if kind in k)
    return studio.pipelines._controlnets[key]


# ---- img2img --------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def img2img_run(studio, tiny_models, pictures):
    seen = []
    job = large(tiny_models, steps=4, strength=0.5, init_image=pictures["init"])
    image, (net,) = run_counting(studio, job, [unet(studio, tiny_models)], on_progress=seen.append)
    return image, net.shapes, seen


def test_large_img2img_runs_every_unet_call_on_a_native_tile(img2img_run):
    image, shapes, _ = img2img_run
    assert image.size == (W, H) and pixels(image).std() > 1
    assert set(shapes) == {(4, TILE, TILE)}  # never the whole 96x80 latent
    assert len(shapes) == TILES * denoise_steps(4, 0.5)  # every tile at every denoising step


def test_large_img2img_progress_counts_encode_steps_and_decode(img2img_run):
    _, _, seen = img2img_run
    total = total_steps(4, 0.5)
    assert total == 2 + 2  # encode + 2 denoising steps (4 x 0.5) + decode
    assert [p.step for p in seen] == list(range(1, total + 1))
    assert {p.total for p in seen} == {total}
    assert [p.preview is not None for p in seen] == [False, True, True, False]  # latent previews while denoising


@pytest.mark.slow
def test_large_img2img_rerun_is_pixel_identical_and_seed_and_init_matter(studio, tiny_models, pictures,
                                                                         img2img_run):
    job = large(tiny_models, steps=4, strength=0.5, init_image=pictures["init"])
    assert np.array_equal(pixels(studio.generate(job).images[0]), pixels(img2img_run[0]))
    assert mean_diff(studio.generate(job.replace(seed=8)).images[0], img2img_run[0]) > 0.5
    assert mean_diff(studio.generate(job.replace(init_image=pictures["other"])).images[0], img2img_run[0]) > 0.5


def chw(image):
    return torch.from_numpy(pixels(image).astype(np.float32)).permute(2, 0, 1)


def test_large_seamless_img2img_keeps_a_tileable_texture_tileable(studio, tiny_models, pictures):
    job = large(tiny_models, strength=0.5, init_image=pictures["periodic"], tiling="xy")
    image = chw(studio.generate(job).images[0])
    assert seam_ratio(image, -1) < 1.6 and seam_ratio(image, -2) < 1.6


@pytest.mark.slow
def test_on_a_seamless_axis_the_right_edge_is_the_left_edges_neighbour(studio, tiny_models, pictures):
    """A band along the right edge of the init changes the *left* edge of the result when x wraps
    (the tiles there run across the edge and see it), and leaves it bit for bit alone when only y
    wraps (the left tiles are far from the band): the wrap is real, and only on the asked axis."""
    job = large(tiny_models, strength=0.5, init_image=pictures["init"])

    def left_edge_change(axes: str) -> float:
        plain = studio.generate(job.replace(tiling=axes)).images[0]
        banded = studio.generate(job.replace(tiling=axes, init_image=pictures["banded"])).images[0]
        return float(np.abs(pixels(plain)[:, :8] - pixels(banded)[:, :8]).mean())

    assert left_edge_change("x") > 0.3
    assert left_edge_change("y") == 0.0


# ---- ControlNets on tiles -------------------------------------------------------------------------


@pytest.fixture(scope="module")
def blank_control_run(studio, tiny_models, pictures):
    job = large(tiny_models, strength=0.5, init_image=pictures["init"])
    return studio.generate(job.replace(controls=[control(tiny_models, pictures["blank"])])).images[0]


@pytest.mark.parametrize("corner, far", [("top-left", (slice(-48, None), slice(-48, None))),
                                         ("bottom-right", (slice(0, 48), slice(0, 48)))])
def test_each_tile_sees_its_own_crop_of_the_control_picture(studio, tiny_models, pictures, blank_control_run,
                                                            corner, far):
    """A control picture that differs from a blank one only in one corner changes the picture
    in that corner and leaves the opposite corner bit for bit alone: the tiles there never saw
    the feature, so their crops lined up with the picture."""
    job = large(tiny_models, strength=0.5, init_image=pictures["init"])
    blank = blank_control_run
    feature = studio.generate(job.replace(controls=[control(tiny_models, pictures[corner])])).images[0]
    diff = np.abs(pixels(blank) - pixels(feature)).mean(-1)
    near = (slice(0, 48), slice(0, 48)) if corner == "top-left" else (slice(-48, None), slice(-48, None))
    assert diff[near].mean() > 0.3
    assert diff[far].max() == 0


@pytest.mark.slow
def test_several_controls_run_per_tile_within_their_steps(studio, tiny_models, pictures):
    """Two ControlNets at once, with CFG: each runs on every tile of the steps in its own
    [start, end] (over the run's 2 denoising steps), on tiles the size of the UNet's."""
    job = large(tiny_models, strength=1.0, cfg=2.0, init_image=pictures["init"],
                controls=[control(tiny_models, pictures["top-left"]),
                          control(tiny_models, pictures["bottom-right"], kind="canny", end=0.5, strength=0.7)])
    studio.generate(job.replace(width=64, height=64, init_image=None, steps=1))  # both nets loaded
    image, (depth, canny) = run_counting(studio, job, [controlnet(studio, "depth"), controlnet(studio, "canny")])
    assert image.size == (W, H)
    assert len(depth.shapes) == TILES * 2 and len(canny.shapes) == TILES
    assert set(depth.shapes) == set(canny.shapes) == {(4, TILE, TILE)}
    single = studio.generate(job.replace(controls=job.controls[:1])).images[0]
    assert mean_diff(single, image) > 0.1  # the second control counts


@pytest.mark.slow
def test_large_txt2img_with_a_control_takes_the_tiled_path(studio, tiny_models, pictures):
    seen = []
    job = large(tiny_models, controls=[control(tiny_models, pictures["top-left"])])
    studio.generate(job.replace(width=64, height=64, steps=1))  # the net is loaded
    image, (net,) = run_counting(studio, job, [controlnet(studio, "depth")], on_progress=seen.append)
    assert image.size == (W, H)
    assert seen[-1].step == seen[-1].total == total_steps(2)  # base + encode + refine + decode
    # the base pass sees the control scaled to its 64x56 picture, the refine pass the tiles' crops
    assert net.shapes == [(4, 28, 32)] * 2 + [(4, TILE, TILE)] * TILES * denoise_steps(2, 0.35)
    assert np.array_equal(pixels(studio.generate(job).images[0]), pixels(image))
    assert mean_diff(studio.generate(job.replace(controls=[])).images[0], image) > 0.1


# ---- inpaint on a crop ----------------------------------------------------------------------------


def outside(mask_path) -> np.ndarray:
    return np.asarray(Image.open(mask_path).convert("L")) < 128


@pytest.mark.parametrize("model", ["sd15", "sd15_inpaint"])
def test_large_inpaint_repaints_a_crop_and_keeps_every_pixel_outside_the_mask(studio, tiny_models, pictures,
                                                                              model):
    path = getattr(tiny_models, model)
    job = large(tiny_models, path, strength=1.0, init_image=pictures["init"], mask=pictures["mask"])
    image, (net,) = run_counting(studio, job, [unet(studio, tiny_models, path)])
    init = pixels(Image.open(pictures["init"]))
    keep = outside(pictures["mask"])
    assert image.size == (W, H)
    assert np.array_equal(pixels(image)[keep], init[keep])
    assert np.abs(pixels(image)[~keep] - init[~keep]).mean() > 1
    # the 30x30 mask plus context is a native 64x64 crop: the UNet never sees the whole picture
    channels = 9 if model == "sd15_inpaint" else 4
    assert set(net.shapes) == {(channels, 32, 32)} and len(net.shapes) == 2
    assert np.array_equal(pixels(studio.generate(job).images[0]), pixels(image))


def test_large_inpaint_across_a_seamless_edge_crops_around_it(studio, tiny_models, pictures):
    """A mask touching the right edge of an x-seamless texture: the crop runs across the edge and
    continues on the left, so the repaint sees the texture's other side as its neighbour."""
    job = large(tiny_models, strength=1.0, init_image=pictures["periodic"], mask=pictures["edge-mask"],
                tiling="x", mask_feather=0)
    image, (net,) = run_counting(studio, job, [unet(studio, tiny_models)])
    init = pixels(Image.open(pictures["periodic"]))
    keep = outside(pictures["edge-mask"])
    assert np.array_equal(pixels(image)[keep], init[keep])
    assert set(net.shapes) == {(4, 32, 32)}  # a native crop, not the whole width
    from brushwork.engine.tiled_inpaint import crop_window, span

    start, length = span(~keep.all(axis=0), wrap=True)
    x0, w = crop_window(start, length, W, 16, 64, wrap=True)
    assert x0 + w > W and x0 < W  # the crop really ran across the edge


def test_large_inpaint_with_the_inpaint_controlnet(studio, tiny_models, pictures):
    job = large(tiny_models, strength=1.0, init_image=pictures["init"], mask=pictures["mask"],
                controls=[Control(kind="inpaint", model=str(tiny_models.controlnets["inpaint"])),
                          control(tiny_models, pictures["top-left"])])
    image = studio.generate(job).images[0]
    keep = outside(pictures["mask"])
    assert np.array_equal(pixels(image)[keep], pixels(Image.open(pictures["init"]))[keep])


@pytest.mark.parametrize("model, channels", [("sd15", 4), ("sd15_inpaint", 9)])
def test_a_mask_over_most_of_a_large_picture_is_repainted_in_tiles_at_full_size(studio, tiny_models, pictures,
                                                                                model, channels):
    """The mask's crop (the whole 192x160 picture) is over 2 tiles: it runs the tiled phases at full
    resolution, never scaled down and never in one piece; outside the mask stays exact."""
    path = getattr(tiny_models, model)
    seen = []
    job = large(tiny_models, path, strength=1.0, init_image=pictures["init"], mask=pictures["big-mask"])
    image, (net,) = run_counting(studio, job, [unet(studio, tiny_models, path)], on_progress=seen.append)
    assert net.shapes == [(channels, TILE, TILE)] * TILES * 2
    assert [p.step for p in seen] == [1, 2, 3, 4] and seen[-1].total == total_steps(2, 1.0)
    keep = outside(pictures["big-mask"])
    init = pixels(Image.open(pictures["init"]))
    assert image.size == (W, H)
    assert np.array_equal(pixels(image)[keep], init[keep])
    assert np.abs(pixels(image)[~keep] - init[~keep]).mean() > 1


def test_a_plain_checkpoint_keeps_the_unmasked_latents_on_the_init_picture(tiny_models):
    """The tiled denoise of a 4-channel inpaint resets the places outside the mask to the init
    latents (noised to the next step's level) after every step, so after the last step they are
    the init latents exactly, and inside the mask the picture changed."""
    import test_prompts_tinykit as kit
    from brushwork import Recipe
    from brushwork.engine.plan import ModelFacts, plan
    from brushwork.engine.prompts import encode_prompts
    from brushwork.engine.run import Execution
    from brushwork.engine.tiled_denoise import denoise_tiled

    pipe = kit.load("sd15", tiny_models)
    job = Execution(pipe=pipe, inputs=None,
                    plan=plan(Recipe(prompt="a wall", width=512, height=512, steps=3, cfg=1.0, sampler="Euler a",
                                     strength=1.0),
                              ModelFacts.of_pipe(pipe, "sd15")),
                    prompt_kwargs=encode_prompts(pipe, "a wall", "", family="sd15"),
                    scheduler_config=dict(pipe.scheduler.config))
    init = torch.randn(1, 4, 40, 48, generator=torch.Generator().manual_seed(0))
    mask = torch.zeros(1, 1, 40, 48)
    mask[..., 10:30, 12:40] = 1
    out = denoise_tiled(job, init, run_steps=3, seed=5, tile=TILE, axes="", keep_outside=mask)
    outside_mask = (mask == 0).expand_as(out)
    assert torch.equal(out[outside_mask], init[outside_mask])
    assert (out - init)[~outside_mask].abs().mean() > 0.1


def test_a_large_inpaint_with_an_empty_mask_returns_the_init_untouched(studio, tiny_models, pictures):
    job = large(tiny_models, strength=1.0, init_image=pictures["init"], mask=pictures["no-mask"])
    image, (net,) = run_counting(studio, job, [unet(studio, tiny_models)])
    assert net.shapes == []
    assert np.array_equal(pixels(image), pixels(Image.open(pictures["init"])))


def test_large_txt2img_and_img2img_on_an_inpainting_checkpoint_refine_in_tiles(studio, tiny_models, pictures):
    """A 9-channel checkpoint runs txt2img / img2img as inpainting of the whole picture: its tiles
    get the mask and masked-picture channels (9 in all), never the full size."""
    model = tiny_models.sd15_inpaint
    net = unet(studio, tiny_models, model)
    image, (calls,) = run_counting(studio, large(tiny_models, model), [net])
    assert image.size == (W, H) and pixels(image).std() > 1
    assert calls.shapes == [(9, 28, 32)] * 2 + [(9, TILE, TILE)] * TILES * denoise_steps(2, 0.35)
    job = large(tiny_models, model, strength=0.5, init_image=pictures["init"])
    image, (calls,) = run_counting(studio, job, [net])
    assert calls.shapes == [(9, TILE, TILE)] * TILES * denoise_steps(2, 0.5)
    assert np.array_equal(pixels(studio.generate(job).images[0]), pixels(image))


# ---- the crop's geometry --------------------------------------------------------------------------


def test_span_is_the_shortest_run_holding_every_used_index():
    from brushwork.engine.tiled_inpaint import span

    used = np.zeros(10, bool)
    assert span(used, wrap=True) is None and span(used, wrap=False) is None
    used[[8, 9, 0, 1]] = True
    assert span(used, wrap=False) == (0, 10)
    assert span(used, wrap=True) == (8, 4)  # across the end
    used[:] = False
    used[3] = True
    assert span(used, wrap=True) == span(used, wrap=False) == (3, 1)
    assert span(np.ones(10, bool), wrap=True)[1] == 10


def test_crop_window_grows_centres_and_stays_inside():
    from brushwork.engine.tiled_inpaint import crop_window

    assert crop_window(100, 30, 192, 16, 64, wrap=False) == (83, 64)  # 62 -> at least 64, centred
    assert crop_window(0, 10, 192, 16, 64, wrap=False) == (0, 64)  # pushed inside at the start
    assert crop_window(185, 7, 192, 16, 64, wrap=False) == (128, 64)  # and at the end
    assert crop_window(185, 7, 192, 16, 64, wrap=True) == (156, 64)  # or across it on a torus
    assert crop_window(10, 150, 160, 16, 64, wrap=True) == (0, 160)  # the whole axis
    start, size = crop_window(50, 45, 4096, 128, 512, wrap=False)
    assert size % 8 == 0 and size >= 512 and start <= 50 and start + size >= 95


# ---- SDXL ---------------------------------------------------------------------------------------


def test_sdxl_large_img2img_with_a_control_and_inpaint(studio, tiny_models, pictures):
    """The SDXL conditioning (pooled text, size ids) reaches the tiles' UNet and ControlNet calls."""
    depth = Control(kind="depth", image=pictures["top-left"], model=str(tiny_models.sdxl_controlnets["depth"]))
    job = large(tiny_models, tiny_models.sdxl, cfg=2.0, strength=0.5, init_image=pictures["init"],
                controls=[depth])
    studio.generate(job.replace(width=64, height=64, steps=1, init_image=None))  # loaded
    image, (net, cn) = run_counting(studio, job, [last_base(studio).pipe.unet, controlnet(studio, "sdxl-depth")])
    assert image.size == (W, H) and pixels(image).std() > 1
    assert net.shapes == cn.shapes == [(4, TILE, TILE)] * TILES
    inpaint = job.replace(controls=[], mask=pictures["mask"], strength=1.0)
    painted = studio.generate(inpaint).images[0]
    keep = outside(pictures["mask"])
    assert np.array_equal(pixels(painted)[keep], pixels(Image.open(pictures["init"]))[keep])


# ---- cancel -------------------------------------------------------------------------------------


@pytest.mark.parametrize("task", ["img2img", "inpaint"])
def test_cancel_stops_a_large_img2img_or_inpaint_at_the_next_check(studio, tiny_models, pictures, task):
    import threading

    from brushwork import CancelledError

    cancel, seen = threading.Event(), []

    def listen(p):
        seen.append(p.step)
        cancel.set()  # after the first step: img2img's encode, the crop's first denoising step

    extra = {"mask": pictures["mask"]} if task == "inpaint" else {}
    job = large(tiny_models, steps=4, strength=1.0, init_image=pictures["init"], **extra)
    with pytest.raises(CancelledError):
        studio.generate(job, on_progress=listen, cancel=cancel)
    assert seen == [1]
    assert studio.generate(recipe(tiny_models.sd15)).images[0].size == (64, 64)  # the Studio still works


# ---- tile size --------------------------------------------------------------------------------


def test_a_tile_is_the_native_size_but_never_under_32_latent_pixels():
    from types import SimpleNamespace

    from brushwork.engine.tiled import tile_size, wants_tiled

    def pipe(sample_size, scale):
        return SimpleNamespace(unet=SimpleNamespace(config={"sample_size": sample_size}), vae_scale_factor=scale)

    assert tile_size(pipe(64, 8)) == 512  # SD 1.5
    assert tile_size(pipe(128, 8)) == 1024  # SDXL
    assert tile_size(pipe(32, 2)) == 64  # the tiny test models
    assert tile_size(pipe(8, 8)) == 256  # the 64 px demo model: 8-latent tiles would be all border
    assert not wants_tiled(512, 512, tile_size(pipe(8, 8))) and wants_tiled(520, 512, tile_size(pipe(8, 8)))


def test_the_demo_model_runs_a_512_img2img_in_one_piece(studio, pictures):
    """The bundled demo model is 64 px native (8 latent pixels): at 512² its tiles would be 1x1 at
    the UNet's bottom and cost a call each; it runs the plain path up to 2 x 256 px."""
    from brushwork import Recipe

    init = Image.open(pictures["init"]).resize((512, 512))
    path = write_png(Path(pictures["init"]).parent / "init512.png", init)
    job = Recipe(prompt="red brick wall", steps=2, width=512, height=512, seed=1, init_image=path, strength=0.5)
    studio.generate(job.replace(width=64, height=64, steps=1, init_image=None))  # the demo is loaded
    image, (net,) = run_counting(studio, job, [last_base(studio).pipe.unet])
    assert image.size == (512, 512) and net.shapes == [(4, 64, 64)]  # one step, the whole latent
