"""Reference images (IP-Adapters) through the real Studio, against diffusers' own pipeline call.

The tiny adapters (``brushwork.testing.tiny_ip_adapter``) have h94/IP-Adapter's key layout and an
``image_encoder`` folder beside them; the reference side loads them with diffusers' own
``load_ip_adapter`` and passes the picture as ``ip_adapter_image`` (diffusers encodes it), the
Studio resolves them by path, encodes once and passes embeddings. Tolerance: 1 level of 255 (fp32
on the CPU; the two sides run the same operations).

Modes on the tiny UNets (cross-attention in down block 1 and up block 0): style = up block_0's
attention 1, composition = down block_1's last attention (engine/references.py's rule; on real
SDXL the same rule gives diffusers' documented InstantStyle blocks, checked on a meta-device UNet).
"""

from __future__ import annotations

import numpy as np
import pytest
import torch
from brushwork.errors import InputImageError, ModelNotFoundError, UnsafeCheckpointError
from brushwork.recipe import Reference
from brushwork.testing.tiny_ip_adapter import (
    SD15_ADAPTER,
    SD15_ADAPTER_B,
    SDXL_ADAPTER,
    ensure_tiny_ip_adapters,
)
from PIL import Image
from test_engine_support import module_studio, pixels, recipe

pytestmark = pytest.mark.xdist_group("references")

PROMPT, NEGATIVE = "a red apple on a table", "blurry"
STEPS, CFG, SEED, SIZE = 4, 5.0, 1234, 64


@pytest.fixture(scope="session")
def adapters(tiny_models):
    """name -> weights file, written once into the tiny set's ``ipadapter`` folder."""
    return ensure_tiny_ip_adapters(tiny_models.root)


@pytest.fixture(scope="module")
def studio(tmp_path_factory):
    return module_studio(tmp_path_factory)


def picture(seed: int) -> Image.Image:
    rng = np.random.default_rng(seed)
    return Image.fromarray((rng.random((SIZE, SIZE, 3)) * 255).astype(np.uint8), "RGB")


@pytest.fixture(scope="module")
def pictures(tmp_path_factory):
    folder = tmp_path_factory.mktemp("reference-pictures")
    out = []
    for seed in (1, 2):
        path = folder / f"reference-{seed}.png"
        picture(seed).save(path)
        out.append(path)
    return out


def our_recipe(model, *references, **changes):
    fields = dict(prompt=PROMPT, negative_prompt=NEGATIVE, steps=STEPS, cfg=CFG, seed=SEED, sampler="Euler a",
                  width=SIZE, height=SIZE, references=list(references))
    return recipe(model, **{**fields, **changes})


def reference_pipe(cls, folder, adapter_files: list):
    """The diffusers pipeline with the adapters loaded by diffusers itself (the first one's
    image_encoder folder, as ``load_ip_adapter`` loads it)."""
    from diffusers import EulerAncestralDiscreteScheduler

    extra = {"safety_checker": None, "requires_safety_checker": False} if "XL" not in cls.__name__ else {}
    pipe = cls.from_pretrained(str(folder), **extra)
    pipe.scheduler = EulerAncestralDiscreteScheduler.from_config(pipe.scheduler.config)
    pipe.set_progress_bar_config(disable=True)
    pipe.load_ip_adapter([str(f.parent) for f in adapter_files], subfolder=[""] * len(adapter_files),
                         weight_name=[f.name for f in adapter_files], image_encoder_folder="image_encoder")
    return pipe


def their_image(pipe, images, **kwargs):
    return pipe(PROMPT, negative_prompt=NEGATIVE, num_inference_steps=STEPS, guidance_scale=CFG, height=SIZE,
                width=SIZE, ip_adapter_image=images, generator=torch.Generator("cpu").manual_seed(SEED),
                **kwargs).images[0]


def max_diff(a, b) -> int:
    return int(np.abs(pixels(a) - pixels(b)).max())


# ---- against diffusers ------------------------------------------------------------------------


@pytest.mark.parametrize(("mode", "scale"), [
    ("style", {"up": {"block_0": [0.0, 0.8, 0.0]}}),
    ("composition", {"down": {"block_1": [0.0, 0.8]}}),
    ("full", 0.8),  # the classic IP-Adapter: every layer at the weight
])
def test_one_reference_is_diffusers_own_ip_adapter_call(tiny_models, adapters, studio, pictures, mode, scale):
    from diffusers import StableDiffusionPipeline

    ours = studio.generate(our_recipe(tiny_models.sd15, Reference(image=str(pictures[0]), weight=0.8, mode=mode,
                                                                  model=str(adapters[SD15_ADAPTER]))))
    pipe = reference_pipe(StableDiffusionPipeline, tiny_models.sd15, [adapters[SD15_ADAPTER]])
    pipe.set_ip_adapter_scale(scale)
    theirs = their_image(pipe, Image.open(pictures[0]))
    assert max_diff(ours.images[0], theirs) <= 1
    plain = studio.generate(our_recipe(tiny_models.sd15)).images[0]
    assert max_diff(ours.images[0], plain) > 10  # the reference does change the picture


def test_two_references_at_once_are_diffusers_two_adapters(tiny_models, adapters, studio, pictures):
    from diffusers import StableDiffusionPipeline

    refs = [Reference(image=str(pictures[0]), weight=0.7, mode="style", model=str(adapters[SD15_ADAPTER])),
            Reference(image=str(pictures[1]), weight=1.2, mode="composition", model=str(adapters[SD15_ADAPTER_B]))]
    ours = studio.generate(our_recipe(tiny_models.sd15, *refs)).images[0]
    pipe = reference_pipe(StableDiffusionPipeline, tiny_models.sd15, [adapters[SD15_ADAPTER], adapters[SD15_ADAPTER_B]])
    pipe.set_ip_adapter_scale([{"up": {"block_0": [0.0, 0.7, 0.0]}}, {"down": {"block_1": [0.0, 1.2]}}])
    theirs = their_image(pipe, [Image.open(pictures[0]), Image.open(pictures[1])])
    assert max_diff(ours, theirs) <= 1
    one = studio.generate(our_recipe(tiny_models.sd15, refs[0])).images[0]
    assert max_diff(ours, one) > 10  # the second reference counts


def test_sdxl_reference_is_diffusers_own_call(tiny_models, adapters, studio, pictures):
    from diffusers import StableDiffusionXLPipeline

    ours = studio.generate(our_recipe(tiny_models.sdxl, Reference(image=str(pictures[0]), weight=1.0,
                                                                  model=str(adapters[SDXL_ADAPTER])))).images[0]
    pipe = reference_pipe(StableDiffusionXLPipeline, tiny_models.sdxl, [adapters[SDXL_ADAPTER]])
    pipe.set_ip_adapter_scale({"up": {"block_0": [0.0, 1.0, 0.0]}})
    theirs = their_image(pipe, Image.open(pictures[0]))
    assert max_diff(ours, theirs) <= 1


def test_mode_blocks_on_real_sdxl_are_instantstyles():
    """On SDXL's real UNet shape the rule gives the blocks diffusers' IP-Adapter docs name for
    InstantStyle (style: up block_0 attention 1; layout: down block_2 attention 1)."""
    from brushwork.engine.references import block_scale
    from diffusers import UNet2DConditionModel

    config = dict(sample_size=128, cross_attention_dim=2048, block_out_channels=(320, 640, 1280),
                  down_block_types=("DownBlock2D", "CrossAttnDownBlock2D", "CrossAttnDownBlock2D"),
                  up_block_types=("CrossAttnUpBlock2D", "CrossAttnUpBlock2D", "UpBlock2D"),
                  transformer_layers_per_block=(1, 2, 10), attention_head_dim=(5, 10, 20),
                  use_linear_projection=True, addition_embed_type="text_time", addition_time_embed_dim=256,
                  projection_class_embeddings_input_dim=2816)
    with torch.device("meta"):
        unet = UNet2DConditionModel(**config)
    assert block_scale(unet, "style", 0.5) == {"up": {"block_0": [0.0, 0.5, 0.0]}}
    assert block_scale(unet, "composition", 0.5) == {"down": {"block_2": [0.0, 0.5]}}


# ---- behaviour ---------------------------------------------------------------------------------


def test_weight_zero_is_no_reference(tiny_models, adapters, studio, pictures):
    plain = studio.generate(our_recipe(tiny_models.sd15)).images[0]
    zero = studio.generate(our_recipe(tiny_models.sd15, Reference(image=str(pictures[0]), weight=0.0,
                                                                  model=str(adapters[SD15_ADAPTER])))).images[0]
    assert np.array_equal(pixels(plain), pixels(zero))


def test_no_reference_state_leaks_into_the_next_job(tiny_models, adapters, studio, pictures, tmp_path_factory):
    """The worker keeps one Studio: a job after a reference job is the job a fresh Studio makes."""
    from brushwork.engine import references

    studio.generate(our_recipe(tiny_models.sd15, Reference(image=str(pictures[0]), weight=1.0,
                                                           model=str(adapters[SD15_ADAPTER]))))
    after = studio.generate(our_recipe(tiny_models.sd15, batch=2))
    fresh = module_studio(tmp_path_factory).generate(our_recipe(tiny_models.sd15, batch=2))
    for a, b in zip(after.images, fresh.images, strict=True):
        assert np.array_equal(pixels(a), pixels(b))
    for base in studio.pipelines._bases.values():
        unet = base.pipe.unet
        assert not references.is_attached(unet)
        assert not any(type(p).__name__.startswith("IPAdapter") for p in unet.attn_processors.values())
        for pipe in [base.pipe, *base.derived.values()]:
            assert getattr(pipe, "image_encoder", None) is None


def test_step_range_changes_the_result_and_reuses_the_loaded_adapter(tiny_models, adapters, studio, pictures):
    def run(**fields):
        ref = Reference(image=str(pictures[0]), weight=1.0, model=str(adapters[SD15_ADAPTER]), **fields)
        return studio.generate(our_recipe(tiny_models.sd15, ref)).images[0]

    from brushwork.engine import references

    whole, first_half, second_half = run(), run(end=0.5), run(start=0.5)
    plain = studio.generate(our_recipe(tiny_models.sd15)).images[0]
    for a, b in [(whole, first_half), (whole, second_half), (first_half, second_half), (first_half, plain)]:
        assert max_diff(a, b) > 0
    unet = list(studio.pipelines._bases.values())[-1].pipe.unet
    assert references.loaded_keys(unet) == (str(adapters[SD15_ADAPTER].resolve()),)


def test_batch_encodes_the_reference_once(tiny_models, adapters, tmp_path_factory, pictures):
    studio = module_studio(tmp_path_factory)
    ref = Reference(image=str(pictures[0]), weight=1.0, model=str(adapters[SD15_ADAPTER]))
    calls = []
    studio.generate(our_recipe(tiny_models.sd15))
    from brushwork.engine import references

    real = references._EncoderShim.__init__

    def counting(self, *args):
        calls.append(1)
        real(self, *args)

    references._EncoderShim.__init__ = counting
    try:
        result = studio.generate(our_recipe(tiny_models.sd15, ref, batch=2))
        studio.generate(our_recipe(tiny_models.sd15, ref, seed=SEED + 5))
    finally:
        references._EncoderShim.__init__ = real
    assert len(result.images) == 2 and len(calls) == 1  # once for the batch, then from the cache


# ---- bad input: clear errors before any model loads ---------------------------------------------


def test_missing_picture_fails_before_loading(tiny_models, adapters, tmp_path_factory, tmp_path):
    studio = module_studio(tmp_path_factory)
    with pytest.raises(InputImageError):
        studio.generate(our_recipe(tiny_models.sd15, Reference(image=str(tmp_path / "nope.png"),
                                                               model=str(adapters[SD15_ADAPTER]))))
    broken = tmp_path / "broken.png"
    broken.write_bytes(b"not a picture")
    with pytest.raises(InputImageError, match="references"):
        studio.generate(our_recipe(tiny_models.sd15, Reference(image=str(broken), model=str(adapters[SD15_ADAPTER]))))
    assert studio.pipelines.base_loads == 0


def test_pickle_adapter_is_refused_before_loading(tiny_models, tmp_path_factory, pictures, tmp_path):
    studio = module_studio(tmp_path_factory)
    pickle = tmp_path / "ip-adapter_sd15.bin"
    pickle.write_bytes(b"\x80\x02}q\x00.")  # never unpickled: refused by its name
    with pytest.raises(UnsafeCheckpointError, match="pickle"):
        studio.generate(our_recipe(tiny_models.sd15, Reference(image=str(pictures[0]), model=str(pickle))))
    assert studio.pipelines.base_loads == 0


def test_default_adapter_offline_and_not_downloaded_fails_before_loading(tiny_models, tmp_path_factory, pictures,
                                                                         monkeypatch, tmp_path):
    from huggingface_hub import constants

    monkeypatch.setattr(constants, "HF_HUB_CACHE", str(tmp_path / "empty-hf-cache"))
    studio = module_studio(tmp_path_factory)
    studio.settings.offline = True
    with pytest.raises(ModelNotFoundError, match=r"offline.*hf download h94/IP-Adapter "
                                                 r"models/ip-adapter_sd15.safetensors"):
        studio.generate(our_recipe(tiny_models.sd15, Reference(image=str(pictures[0]))))
    assert studio.pipelines.base_loads == 0


def test_adapter_for_another_model_is_a_clear_error(tiny_models, adapters, studio, pictures):
    from brushwork.errors import RecipeError

    with pytest.raises(RecipeError, match="another model"):
        studio.generate(our_recipe(tiny_models.sd15, Reference(image=str(pictures[0]),
                                                               model=str(adapters[SDXL_ADAPTER]))))
    # and the Studio still runs plain jobs as before
    assert studio.generate(our_recipe(tiny_models.sd15)).images[0].size == (SIZE, SIZE)


def test_demo_model_has_no_adapter_clear_error_before_loading(tmp_path_factory, pictures):
    from brushwork.models import bundled

    if bundled.weights_dir() is None:
        pytest.skip("this install has no demo weights")
    studio = module_studio(tmp_path_factory)
    with pytest.raises(ModelNotFoundError, match="demo model has no IP-Adapter"):
        studio.generate(our_recipe("demo", Reference(image=str(pictures[0]))))
    assert studio.pipelines.base_loads == 0


def test_regions_passes_get_the_references_too(tiny_models, adapters, studio, pictures, tmp_path):
    """With regions the UNet runs extra passes per region (engine/regions.py); each must carry the
    reference's image embedding. A region whose prompt is the base prompt then changes nothing."""
    from brushwork.recipe import Region

    mask = Image.new("L", (SIZE, SIZE), 0)
    mask.paste(255, (0, 0, SIZE // 2, SIZE))
    mask.save(tmp_path / "left.png")
    ref = Reference(image=str(pictures[0]), weight=1.0, model=str(adapters[SD15_ADAPTER]))
    alone = studio.generate(our_recipe(tiny_models.sd15, ref)).images[0]
    same = studio.generate(our_recipe(tiny_models.sd15, ref, regions=[
        Region(mask=str(tmp_path / "left.png"), prompt=PROMPT)])).images[0]
    assert max_diff(alone, same) <= 1
