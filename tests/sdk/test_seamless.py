"""seamless(): circular padding on the chosen axes, for UNet, VAE and ControlNets; exact restore.

The proof that an image tiles is that the networks see it as a torus: shifting the input by k
latent pixels shifts the output by exactly k (x 8 for the VAE) pixels, with the pixels that leave
one edge coming back on the other. That is tested on the real tiny UNet, VAE and whole pipeline.
The seam statistic (wrap-around difference vs neighbour difference) needs images with structure,
which random-weight networks do not make, so it is shown on a small blurring conv net where zero
padding visibly darkens the edges, as it does in real models.
"""

from __future__ import annotations

import math
from types import SimpleNamespace

import numpy as np
import pytest
import test_prompts_tinykit as kit
import torch
from brushwork.engine.seamless import seamless, seamless_models
from brushwork.errors import RecipeError
from torch import nn


@pytest.fixture(scope="module")
def pipe(tiny_models):
    p = kit.load("sd15", tiny_models)
    p.set_progress_bar_config(disable=True)
    return p


def convs(model):
    return [m for m in model.modules() if isinstance(m, nn.Conv2d)]


def unet_out(pipe, x):
    cond = torch.randn(1, 77, 32, generator=torch.Generator().manual_seed(1))
    with torch.no_grad():
        return pipe.unet(x, torch.tensor(400), cond).sample


def decode(pipe, z):
    with torch.no_grad():
        return pipe.vae.decode(z).sample


def latents(h=16, w=16, seed=0):
    return torch.randn(1, 4, h, w, generator=torch.Generator().manual_seed(seed))


def shifted_equal(a, b, tol=1e-4):
    return (a - b).abs().max().item() < tol


# -------------------------------------------------------------------------------------------------
# the networks become tori on the chosen axes


@pytest.mark.parametrize("axes, wraps_x, wraps_y", [("xy", True, True), ("x", True, False),
                                                    ("y", False, True), ("", False, False)])
def test_unet_is_shift_equivariant_exactly_on_the_seamless_axes(pipe, axes, wraps_x, wraps_y):
    x = latents(16, 16)
    with seamless(pipe, axes):
        out = unet_out(pipe, x)
        # a shift by 2 (the UNet halves the size once) along W, then along H
        along_x = unet_out(pipe, torch.roll(x, 2, -1))
        along_y = unet_out(pipe, torch.roll(x, 2, -2))
    assert shifted_equal(along_x, torch.roll(out, 2, -1)) == wraps_x
    assert shifted_equal(along_y, torch.roll(out, 2, -2)) == wraps_y


def test_vae_decoder_is_a_torus(pipe):
    z = latents(8, 8)
    f = pipe.vae_scale_factor
    with seamless(pipe, "xy"):
        image = decode(pipe, z)
        moved = decode(pipe, torch.roll(z, (3, 5), (-2, -1)))
    assert shifted_equal(moved, torch.roll(image, (3 * f, 5 * f), (-2, -1)))
    assert not shifted_equal(decode(pipe, torch.roll(z, 3, -1)), torch.roll(decode(pipe, z), 3 * f, -1))


@pytest.mark.parametrize("axes", ["xy", "x"])
def test_vae_encoder_is_a_torus_too(pipe, axes):
    """img2img: the encoder's hand-padded downsampling wraps as well."""
    image = torch.rand(1, 3, 32, 32, generator=torch.Generator().manual_seed(2)) * 2 - 1
    f = pipe.vae_scale_factor

    def encode(x):
        with torch.no_grad():
            return pipe.vae.encode(x).latent_dist.mean

    with seamless(pipe, axes):
        latent = encode(image)
        along_x = encode(torch.roll(image, 2 * f, -1))
        along_y = encode(torch.roll(image, 2 * f, -2))
    assert shifted_equal(along_x, torch.roll(latent, 2, -1))
    assert shifted_equal(along_y, torch.roll(latent, 2, -2)) == (axes == "xy")


def test_whole_pipeline_makes_an_image_without_edges(pipe):
    """Rolled starting noise gives the rolled image: no pixel column is an edge."""
    z = latents(16, 16, seed=7)

    def run(start):
        return pipe("a red cat", num_inference_steps=2, height=32, width=32, latents=start.clone(),
                    output_type="np").images[0]

    f = pipe.vae_scale_factor
    with seamless(pipe, "xy"):
        image = run(z)
        moved = run(torch.roll(z, (4, 6), (-2, -1)))
    assert np.abs(moved - np.roll(image, (4 * f, 6 * f), (0, 1))).max() < 1e-3
    # tiled 2x2, the seams are no different from any other neighbouring columns/rows
    tiled = np.tile(image, (2, 2, 1))
    cols = np.abs(np.diff(tiled, axis=1)).mean(axis=(0, 2))
    rows = np.abs(np.diff(tiled, axis=0)).mean(axis=(1, 2))
    w, h = image.shape[1], image.shape[0]
    assert cols[w - 1] <= cols.max() and cols[w - 1] == pytest.approx(cols[2 * w - 1 - w], rel=1e-6)
    assert rows[h - 1] <= rows.max()
    plain = run(z)
    assert np.abs(np.roll(plain, 6 * f, 1) - run(torch.roll(z, 6, -1))).max() > 1e-2


# -------------------------------------------------------------------------------------------------
# the seam statistic, on a network with structure


class Blur(nn.Module):
    """Three 3x3 box blurs: smooth in, smooth out; zero padding darkens the border like real models."""

    def __init__(self):
        super().__init__()
        self.layers = nn.Sequential(*[nn.Conv2d(3, 3, 3, padding=1, bias=False) for _ in range(3)])
        with torch.no_grad():
            for conv in self.layers:
                conv.weight.zero_()
                for c in range(3):
                    conv.weight[c, c] = 1 / 9

    def forward(self, x):
        return self.layers(x)


def periodic_image(n=48):
    yy, xx = torch.meshgrid(torch.arange(n), torch.arange(n), indexing="ij")
    channels = [0.5 + 0.4 * torch.sin(2 * math.pi * (xx * a + yy * b) / n + c)
                for a, b, c in ((1, 0, 0.3), (0, 1, 1.0), (1, 1, 2.0))]
    return torch.stack(channels)[None]


def seam_ratio(image: torch.Tensor, dim: int) -> float:
    """Tile the image 2x along ``dim`` and compare the steps around the seam with typical steps.

    A seam shows as a band of unusual steps next to the join (zero padding darkens both edges, so
    the step *across* the join alone can look harmless): the largest step within 2 pixels of the
    join, over the median step of the whole tiled picture. ~1 = invisible.
    """
    tiled = torch.cat([image, image], dim=dim)
    steps = tiled.diff(dim=dim).abs()
    other = [d for d in range(steps.ndim) if d != dim % steps.ndim]
    profile = steps.mean(dim=other)  # one mean step per position along dim
    n = image.shape[dim]
    return (profile[n - 3:n + 2].max() / profile.median()).item()


@pytest.mark.parametrize("axes", ["", "x", "y", "xy"])
def test_seam_statistic(axes):
    model = Blur()
    holder = SimpleNamespace(unet=model)
    with seamless(holder, axes), torch.no_grad():
        image = model(periodic_image())
    rx, ry = seam_ratio(image, -1), seam_ratio(image, -2)
    # seamless axis: the steps at the join are like any other; other axis: a visible seam
    assert (rx < 1.6) if "x" in axes else (rx > 3)
    assert (ry < 1.6) if "y" in axes else (ry > 3)


# -------------------------------------------------------------------------------------------------
# exact restore


def test_restored_exactly_afterwards(pipe):
    x, z = latents(), latents(8, 8)
    before_unet, before_vae = unet_out(pipe, x), decode(pipe, z)
    with seamless(pipe, "xy") as patched:
        assert patched > 0
        assert not torch.equal(unet_out(pipe, x), before_unet)
    assert torch.equal(unet_out(pipe, x), before_unet)
    assert torch.equal(decode(pipe, z), before_vae)
    assert all("_conv_forward" not in c.__dict__ for c in convs(pipe.unet) + convs(pipe.vae))


def test_restored_after_an_exception(pipe):
    x = latents()
    before = unet_out(pipe, x)
    with pytest.raises(RuntimeError, match="boom"), seamless(pipe, "x"):
        raise RuntimeError("boom")
    assert torch.equal(unet_out(pipe, x), before)
    assert all("_conv_forward" not in c.__dict__ for c in convs(pipe.unet) + convs(pipe.vae))


def test_nested_and_empty_axes(pipe):
    x = latents()
    before = unet_out(pipe, x)
    with seamless(pipe, "") as patched:
        assert patched == 0 and torch.equal(unet_out(pipe, x), before)
    with seamless(pipe, "x"):
        only_x = unet_out(pipe, x)
        with seamless(pipe, "xy"):
            pass
        assert torch.equal(unet_out(pipe, x), only_x)  # the outer patch is back
    assert torch.equal(unet_out(pipe, x), before)


def downsample_convs(model):
    """Convs of diffusers' Downsample2D fed a hand-made zero pad (the VAE encoder's)."""
    return [m.conv for m in model.modules() if type(m).__name__ == "Downsample2D" and m.padding == 0]


def test_only_padded_convs_are_patched(pipe):
    padded = [c for c in convs(pipe.unet) + convs(pipe.vae) if c.padding != (0, 0)]
    hand_padded = downsample_convs(pipe.vae)
    assert hand_padded  # the tiny VAE encoder has one
    with seamless(pipe, "xy") as patched:
        assert patched == len(padded) + len(hand_padded)
        assert all("_conv_forward" in c.__dict__ for c in padded + hand_padded)
        assert all("_conv_forward" not in c.__dict__ for c in convs(pipe.unet) if c.padding == (0, 0))


def test_vae_tiling_is_off_inside_and_back_after(pipe):
    pipe.vae.enable_tiling()
    try:
        with seamless(pipe, "xy"):
            assert pipe.vae.use_tiling is False
        assert pipe.vae.use_tiling is True
    finally:
        pipe.vae.disable_tiling()
    with seamless(pipe, "xy"):
        assert pipe.vae.use_tiling is False
    assert pipe.vae.use_tiling is False


def test_bad_axes(pipe):
    with pytest.raises(RecipeError, match="tiling: must be one of"), seamless(pipe, "z"):
        pass


def test_controlnets_are_patched_too(pipe):
    from diffusers import ControlNetModel, StableDiffusionControlNetPipeline

    torch.manual_seed(0)
    nets = [ControlNetModel.from_unet(pipe.unet, conditioning_embedding_out_channels=(8, 16)) for _ in range(2)]
    for net in nets:  # ControlNets start with zero convs (no-ops): give them something to do
        with torch.no_grad():
            for p in net.parameters():
                if not p.any():
                    p.normal_(0, 0.1)
    multi = StableDiffusionControlNetPipeline.from_pipe(pipe, controlnet=nets)
    assert len(seamless_models(multi)) == 3
    padded = [c for net in nets for c in convs(net) if c.padding != (0, 0)]
    own = [c for c in convs(pipe.unet) + convs(pipe.vae) if c.padding != (0, 0)] + downsample_convs(pipe.vae)
    with seamless(multi, "xy") as patched:
        assert all("_conv_forward" in c.__dict__ for c in padded)
        assert patched == len(own) + len(padded)
        # a ControlNet is a torus too: shifted input and hint give shifted residuals
        net = nets[0]
        x, hint = latents(8, 8), torch.rand(1, 3, 8 * pipe.vae_scale_factor, 8 * pipe.vae_scale_factor)
        cond = torch.randn(1, 77, 32)
        f = pipe.vae_scale_factor
        with torch.no_grad():
            _, mid = net(x, 10, cond, hint, return_dict=False)
            _, mid_moved = net(torch.roll(x, 4, -1), 10, cond, torch.roll(hint, 4 * f, -1), return_dict=False)
        assert shifted_equal(mid_moved, torch.roll(mid, 2, -1))  # the mid block is 1/2 the latent size
    assert all("_conv_forward" not in c.__dict__ for c in padded)


def test_lora_conv_layers_wrap_too(tiny_models):
    """peft's LoRA conv layers hold convs of their own (base_layer, lora_A): all must wrap."""
    from peft import LoraConfig

    pipe = kit.load("sd15", tiny_models)
    pipe.unet.add_adapter(LoraConfig(r=4, lora_alpha=4, init_lora_weights=False,
                                     target_modules=["conv1", "conv2"]), adapter_name="convs")
    x = latents(16, 16)
    with seamless(pipe, "xy"):
        out = unet_out(pipe, x)
        moved = unet_out(pipe, torch.roll(x, (2, 4), (-2, -1)))
    assert shifted_equal(moved, torch.roll(out, (2, 4), (-2, -1)))
