"""The engine's own denoising code against the diffusers pipelines it mirrors, at the same seed.

The tiled path (engine/tiled_denoise.py) re-implements what diffusers' pipelines do inside their
``__call__``: the img2img start (``add_noise`` at the first kept timestep), classifier-free
guidance, ControlNet residuals with ``control_guidance_start/end``, the 9-channel inpainting UNet's
mask + masked-picture channels and the 4-channel inpaint's "keep the outside on the init picture"
step. Run on a picture of exactly one tile (64 px on the tiny model: 32 latent pixels), it must
give what the pipeline's own call gives, so a diffusers upgrade that changes behaviour fails here.

How the two sides are made to start equal: diffusers' pipelines *sample* the VAE posterior with
the job's generator before they draw the noise, the tiled path takes the posterior's mode (no
randomness, the same for every tile). So the reference gets the very latents as its ``image``
(4 channels: the pipelines skip their encoder) and, for 9-channel UNets, ``masked_image_latents``;
both are computed here the diffusers way (``retrieve_latents(..., sample_mode="argmax")``, the
pipelines' own image and mask processors). Prompt embeddings are the reference pipeline's own
``encode_prompt``, passed to both sides.

Tolerances: latents agree to ``LATENT_ATOL`` (fp32 on the CPU; the one-tile blend multiplies by the
feather weight and divides it out again, which is not bit-exact), pixels to 1 level of 255.
The plain path (the pipeline itself, with the engine's prompt encoding and seamless patch) is
compared at the pixel level through the real Studio.
"""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest
import torch
from brushwork.engine.inputs import Inputs
from brushwork.engine.plan import REFINE_STRENGTH, ModelFacts, Plan, plan
from brushwork.engine.run import Execution
from brushwork.engine.tiled import TiledRun
from brushwork.engine.tiled_denoise import (
    TileControls,
    decode_tiled,
    denoise_steps,
    denoise_tiled,
    encode_masked_tiled,
    encode_tiled,
    latent_mask,
)
from brushwork.recipe import Control, Recipe
from PIL import Image
from test_engine_support import gradient, module_studio, pixels, recipe, square_mask, write_png

pytestmark = pytest.mark.xdist_group("executor-vs-diffusers")

SIZE = 64  # exactly one tile of the tiny model (native 64 px, VAE factor 2)
TILE = 32  # latent pixels
STEPS = 4
CFG = 5.0
SEED = 1234
PROMPT, NEGATIVE = "a red apple on a table", "blurry"
LATENT_ATOL = 1e-4


def _reference(cls, folder, **components):
    """A diffusers pipeline loaded by diffusers itself (not the engine's loader), Euler a, fp32 CPU."""
    from diffusers import EulerAncestralDiscreteScheduler

    pipe = cls.from_pretrained(str(folder), safety_checker=None, requires_safety_checker=False, **components)
    pipe.scheduler = EulerAncestralDiscreteScheduler.from_config(pipe.scheduler.config)
    pipe.set_progress_bar_config(disable=True)
    return pipe.to("cpu")


@pytest.fixture(scope="module")
def sd15(tiny_models):
    from diffusers import StableDiffusionImg2ImgPipeline

    return _reference(StableDiffusionImg2ImgPipeline, tiny_models.sd15)


@pytest.fixture(scope="module")
def embeds(sd15):
    with torch.no_grad():
        cond, neg = sd15.encode_prompt(PROMPT, "cpu", 1, True, NEGATIVE)
    return {"prompt_embeds": cond, "negative_prompt_embeds": neg}


def job_for(pipe, embeds, *, controls=(), inputs=None, path: str | None = None) -> Execution:
    """The engine's execution of a one-tile job on ``pipe`` (what Studio builds after loading);
    ``path="tiled"``: the plan of a large job (the tiled path), at one tile."""
    r = Recipe(prompt=PROMPT, negative_prompt=NEGATIVE, steps=STEPS, cfg=CFG, sampler="Euler a",
               width=SIZE, height=SIZE, seed=SEED, controls=list(controls))
    facts = ModelFacts.of_pipe(pipe, "sd15")
    job_plan: Plan = plan(r, facts)
    if path == "tiled":  # the same job as planned at 3x the size, shrunk back to one tile
        big = plan(r.replace(width=3 * SIZE, height=3 * SIZE), facts)
        job_plan = dataclasses.replace(big, width=SIZE, height=SIZE, tile_grid=(1, 1))
    return Execution(pipe=pipe, plan=job_plan, inputs=inputs or Inputs(), prompt_kwargs=dict(embeds),
                     scheduler_config=dict(pipe.scheduler.config))


def argmax_latents(pipe, picture: Image.Image, mask: Image.Image | None = None) -> torch.Tensor:
    """diffusers' encode of a picture (or, with ``mask``, of the masked picture a 9-channel UNet
    takes: ``init * (mask < 0.5)``), the posterior's mode, scaled."""
    from diffusers.pipelines.stable_diffusion.pipeline_stable_diffusion_img2img import retrieve_latents

    x = pipe.image_processor.preprocess(picture, height=SIZE, width=SIZE).float()
    if mask is not None:
        m = pipe.mask_processor.preprocess(mask, height=SIZE, width=SIZE)
        x = x * (m < 0.5)
    with torch.no_grad():
        z = retrieve_latents(pipe.vae.encode(x), sample_mode="argmax")
    return z * pipe.vae.config.scaling_factor


def decoded(pipe, latents: torch.Tensor) -> Image.Image:
    """diffusers' own decode + postprocess of final latents."""
    with torch.no_grad():
        x = pipe.vae.decode(latents / pipe.vae.config.scaling_factor, return_dict=False)[0]
    return pipe.image_processor.postprocess(x, output_type="pil")[0]


def max_pixel_diff(a: Image.Image, b: Image.Image) -> int:
    return int(np.abs(pixels(a) - pixels(b)).max())


def picture() -> Image.Image:
    return gradient(SIZE, seed=3)


# ---- the tiled phases, one tile ---------------------------------------------------------------


def test_one_tile_encode_and_decode_are_the_vae_pipelines_own(sd15):
    image = picture()
    latents = encode_tiled(sd15.vae, image, sd15.vae_scale_factor, TILE, "")
    torch.testing.assert_close(latents, argmax_latents(sd15, image), atol=LATENT_ATOL, rtol=0)
    assert max_pixel_diff(decode_tiled(sd15.vae, latents, sd15.vae_scale_factor, TILE, ""),
                          decoded(sd15, latents)) <= 1


@pytest.mark.parametrize("strength", [0.5, 1.0])
def test_img2img_denoise_matches_the_img2img_pipeline(sd15, embeds, strength):
    init = argmax_latents(sd15, picture())
    ours = denoise_tiled(job_for(sd15, embeds), init, run_steps=denoise_steps(STEPS, strength), seed=SEED,
                         tile=TILE, axes="")
    theirs = sd15(image=init, strength=strength, num_inference_steps=STEPS, guidance_scale=CFG,
                  generator=torch.Generator("cpu").manual_seed(SEED), output_type="latent", **embeds).images
    torch.testing.assert_close(ours, theirs, atol=LATENT_ATOL, rtol=0)


def test_txt2img_tiled_path_on_one_tile_is_txt2img_then_img2img_refine(tiny_models, sd15, embeds):
    """The large txt2img path on a one-tile picture: the base pass is diffusers' txt2img at the
    seed, the refine diffusers' img2img at REFINE_STRENGTH at seed + 1 (from the base's latents)."""
    from diffusers import StableDiffusionPipeline

    txt2img = StableDiffusionPipeline(**sd15.components)
    txt2img.set_progress_bar_config(disable=True)
    ours = TiledRun(job_for(txt2img, embeds, path="tiled"), seed=SEED, index=0, on_progress=None, cancel=None)()
    gen = torch.Generator("cpu")
    base = txt2img(num_inference_steps=STEPS, guidance_scale=CFG, height=SIZE, width=SIZE,
                   generator=gen.manual_seed(SEED), **embeds).images[0]
    refined = sd15(image=argmax_latents(sd15, base), strength=REFINE_STRENGTH, num_inference_steps=STEPS,
                   guidance_scale=CFG, generator=gen.manual_seed(SEED + 1), output_type="latent", **embeds).images
    assert max_pixel_diff(ours, decoded(sd15, refined)) <= 1


@pytest.fixture(scope="module")
def inpaint_pipes(tiny_models, sd15):
    from diffusers import StableDiffusionInpaintPipeline

    four = StableDiffusionInpaintPipeline(**sd15.components)
    four.set_progress_bar_config(disable=True)
    nine = _reference(StableDiffusionInpaintPipeline, tiny_models.sd15_inpaint)
    assert nine.unet.config.in_channels == 9 and four.unet.config.in_channels == 4
    return {4: four, 9: nine}


@pytest.mark.parametrize("strength", [0.6, 1.0])
@pytest.mark.parametrize("channels", [4, 9])
def test_inpaint_denoise_matches_the_inpaint_pipeline(inpaint_pipes, embeds, channels, strength):
    pipe = inpaint_pipes[channels]
    image, mask = picture(), square_mask(SIZE, (12, 20, 44, 52))
    scale = pipe.vae_scale_factor
    init = argmax_latents(pipe, image)
    repaint = np.asarray(mask) >= 128
    keep = latent_mask(repaint, scale)
    extra = None
    masked_ref = argmax_latents(pipe, image, mask)  # a 4-channel UNet's pipeline computes it and does not use it
    if channels == 9:
        masked = encode_masked_tiled(pipe.vae, image, repaint, scale, TILE, "")
        torch.testing.assert_close(masked, masked_ref, atol=LATENT_ATOL, rtol=0)
        extra, keep = torch.cat([keep, masked], dim=1), None
    ours = denoise_tiled(job_for(pipe, embeds), init, run_steps=denoise_steps(STEPS, strength),
                         seed=SEED, tile=TILE, axes="", unet_extra=extra, keep_outside=keep)
    theirs = pipe(image=init, mask_image=mask, strength=strength, num_inference_steps=STEPS, guidance_scale=CFG,
                  height=SIZE, width=SIZE, generator=torch.Generator("cpu").manual_seed(SEED),
                  output_type="latent", masked_image_latents=masked_ref, **embeds).images
    torch.testing.assert_close(ours, theirs, atol=LATENT_ATOL, rtol=0)


def test_controlnet_step_range_matches_the_controlnet_img2img_pipeline(tiny_models, sd15, embeds):
    """A ControlNet acting on the middle half of the steps (start 0.25, end 0.75) at strength 0.8."""
    from diffusers import ControlNetModel, StableDiffusionControlNetImg2ImgPipeline

    net = ControlNetModel.from_pretrained(str(tiny_models.controlnets["depth"]))
    pipe = StableDiffusionControlNetImg2ImgPipeline(**sd15.components, controlnet=net)
    pipe.set_progress_bar_config(disable=True)
    control = Control(kind="depth", image="unused", strength=0.8, start=0.25, end=0.75)
    hint = gradient(SIZE, seed=9).rotate(90)
    init = argmax_latents(sd15, picture())
    strength = 1.0
    controls = TileControls(pipe, [control], [hint], pipe.vae_scale_factor)
    ours = denoise_tiled(job_for(pipe, embeds, controls=[control]), init, run_steps=denoise_steps(STEPS, strength),
                         seed=SEED, tile=TILE, axes="", controls=controls)
    theirs = pipe(image=init, control_image=hint, strength=strength, num_inference_steps=STEPS, guidance_scale=CFG,
                  controlnet_conditioning_scale=0.8, control_guidance_start=0.25, control_guidance_end=0.75,
                  generator=torch.Generator("cpu").manual_seed(SEED), output_type="latent", **embeds).images
    torch.testing.assert_close(ours, theirs, atol=LATENT_ATOL, rtol=0)
    # and the range matters: the same net acting on every step gives other latents
    everywhere = TileControls(pipe, [Control(kind="depth", image="unused", strength=0.8)], [hint], 2)
    other = denoise_tiled(job_for(pipe, embeds, controls=[control]), init, run_steps=STEPS, seed=SEED, tile=TILE,
                          axes="", controls=everywhere)
    assert float((other - ours).abs().max()) > 100 * LATENT_ATOL


# ---- the plain path through the Studio -------------------------------------------------------


@pytest.fixture(scope="module")
def studio(tmp_path_factory):
    return module_studio(tmp_path_factory)


def _studio_recipe(tiny_models, **changes) -> Recipe:
    return recipe(tiny_models.sd15, prompt=PROMPT, negative_prompt=NEGATIVE, steps=STEPS, cfg=CFG, seed=SEED,
                  sampler="Euler a", width=SIZE, height=SIZE, **changes)


def test_plain_txt2img_is_the_pipelines_own_call(tiny_models, studio, sd15):
    from diffusers import StableDiffusionPipeline

    ours = studio.generate(_studio_recipe(tiny_models)).images[0]
    txt2img = StableDiffusionPipeline(**sd15.components)
    txt2img.set_progress_bar_config(disable=True)
    theirs = txt2img(PROMPT, negative_prompt=NEGATIVE, num_inference_steps=STEPS, guidance_scale=CFG,
                     height=SIZE, width=SIZE, generator=torch.Generator("cpu").manual_seed(SEED)).images[0]
    assert max_pixel_diff(ours, theirs) <= 1


def test_plain_seamless_is_the_pipeline_with_torch_circular_padding(tiny_models, studio, sd15):
    """Seamless on both axes = every padded conv of the UNet and the VAE padding circularly, which
    torch itself does with ``padding_mode="circular"`` (the outside reference for the patch)."""
    from diffusers import StableDiffusionPipeline

    ours = studio.generate(_studio_recipe(tiny_models, tiling="xy")).images[0]
    txt2img = StableDiffusionPipeline(**sd15.components)
    txt2img.set_progress_bar_config(disable=True)
    convs = [m for model in (txt2img.unet, txt2img.vae) for m in model.modules()
             if isinstance(m, torch.nn.Conv2d) and any(m.padding)]
    try:
        for conv in convs:
            conv.padding_mode = "circular"
        theirs = txt2img(PROMPT, negative_prompt=NEGATIVE, num_inference_steps=STEPS, guidance_scale=CFG,
                         height=SIZE, width=SIZE, generator=torch.Generator("cpu").manual_seed(SEED)).images[0]
    finally:
        for conv in convs:
            conv.padding_mode = "zeros"
    assert max_pixel_diff(ours, theirs) <= 1


def test_plain_inpaint_on_a_nine_channel_checkpoint_is_the_pipelines_own_call(tiny_models, studio, tmp_path,
                                                                              inpaint_pipes):
    image, mask = picture(), square_mask(SIZE, (12, 20, 44, 52))
    r = recipe(tiny_models.sd15_inpaint, prompt=PROMPT, negative_prompt=NEGATIVE, steps=STEPS, cfg=CFG, seed=SEED,
               sampler="Euler a", width=SIZE, height=SIZE, strength=0.75, mask_feather=0,
               init_image=write_png(tmp_path / "init.png", image), mask=write_png(tmp_path / "mask.png", mask))
    ours = studio.generate(r).images[0]
    pipe = inpaint_pipes[9]
    theirs = pipe(PROMPT, negative_prompt=NEGATIVE, image=image, mask_image=mask, strength=0.75,
                  num_inference_steps=STEPS, guidance_scale=CFG, height=SIZE, width=SIZE,
                  generator=torch.Generator("cpu").manual_seed(SEED)).images[0]
    # the Studio pastes the init picture back outside the mask (mask_feather 0: a hard edge)
    inside = np.asarray(mask) >= 128
    assert int(np.abs(pixels(ours) - pixels(theirs))[inside].max()) <= 1
    assert (pixels(ours)[~inside] == pixels(image)[~inside]).all()
