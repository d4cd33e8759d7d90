"""The tiled upscale path for large images (engine/tiled.py) through the real Studio, tiny SD 1.5.

The tiny SD 1.5's native size is 64 px (UNet sample_size 32 x VAE factor 2), so anything over 128
takes the tiled path. The jobs here are 192x160 (not square, so a swapped axis shows) with cfg 1
and 2 steps: 20-odd tiles per phase, a few seconds per job on 2 cores.
"""

from __future__ import annotations

import threading

import numpy as np
import pytest
import torch
from brushwork import CancelledError
from brushwork.engine.tiled import base_size, feather, tile_starts, total_steps, upscale, wants_tiled
from PIL import Image
from test_engine_support import module_studio, pixels, recipe
from test_seamless import seam_ratio

pytestmark = pytest.mark.xdist_group("engine-tiled")

W, H = 192, 160


@pytest.fixture(scope="module")
def studio(tmp_path_factory):
    return module_studio(tmp_path_factory)


def big(tiny_models, **changes):
    base = dict(width=W, height=H, cfg=1.0, steps=2, sampler="Euler", seed=7)
    base.update(changes)
    return recipe(tiny_models.sd15, **base)


@pytest.fixture(scope="module")
def seamless_run(studio, tiny_models):
    seen = []
    result = studio.generate(big(tiny_models, tiling="xy"), on_progress=seen.append)
    return result, seen


# ---- the pieces ---------------------------------------------------------------------------------


@pytest.mark.parametrize("length, tile, wrap", [(80, 32, True), (80, 32, False), (100, 32, True),
                                                (33, 32, False), (32, 32, True), (20, 32, False)])
def test_tiles_cover_every_place_and_overlap(length, tile, wrap):
    size, starts = tile_starts(length, tile, tile // 4, wrap)
    covered = np.zeros(length, int)
    for s in starts:
        idx = np.arange(s, s + size)
        assert wrap or idx.max() < length  # only wrap axes run past the end
        covered[idx % length] += 1
    assert covered.min() >= 1
    if wrap:  # on a torus the join is covered by a tile running across it
        assert any(s + size > length for s in starts) or size == length


def test_feather_weights_are_positive_and_flat_in_the_middle():
    w = feather(32, 8)
    assert w.min() > 0 and w.max() == 1.0 and torch.equal(w, w.flip(0))
    assert (w[8:24] == 1).all()


def test_routing_threshold_and_base_size():
    assert not wants_tiled(128, 128, 64) and wants_tiled(136, 64, 64)
    assert base_size(4096, 4096, 512) == (512, 512)
    assert base_size(4096, 2048, 512) == (512, 256)
    assert base_size(192, 160, 64) == (64, 56)


def periodic(size=48):
    y, x = np.mgrid[0:size, 0:size]
    wave = 127 + 100 * np.sin(2 * np.pi * x / size) * np.cos(2 * np.pi * y / size)
    return Image.fromarray(np.stack([wave] * 3, -1).astype(np.uint8), "RGB")


def chw(image):
    return torch.from_numpy(pixels(image).astype(np.float32)).permute(2, 0, 1)


def test_upscale_reads_across_the_edge_on_seamless_axes_only():
    small = periodic()
    small = Image.fromarray(np.roll(np.asarray(small), 7, axis=1))  # a hard step is not at the edge
    wrapped = chw(upscale(small, 192, 192, "x"))
    plain = chw(upscale(small, 192, 192, ""))
    assert seam_ratio(wrapped, -1) < seam_ratio(plain, -1)
    assert seam_ratio(wrapped, -1) < 1.6
    assert torch.equal(chw(upscale(small, 192, 192, "y"))[:, :, 20:170],
                       chw(upscale(small, 192, 192, "xy"))[:, :, 20:170])


# ---- through the Studio -------------------------------------------------------------------------


def test_a_large_job_takes_the_tiled_path_and_has_the_asked_size(seamless_run):
    result, seen = seamless_run
    image = result.images[0]
    assert image.size == (W, H) and image.mode == "RGB"
    assert pixels(image).std() > 1  # a picture, not a flat fill
    assert seen[-1].total == total_steps(2)  # base + refine + encode + decode: the tiled path ran


def test_progress_is_monotonic_and_reaches_the_total(seamless_run):
    _, seen = seamless_run
    steps = [p.step for p in seen]
    assert steps == sorted(steps) and len(set(steps)) == len(steps)
    assert steps[-1] == seen[-1].total and {p.total for p in seen} == {seen[-1].total}
    assert all(p.image_index == 0 for p in seen)


def test_rerun_is_pixel_identical(studio, tiny_models, seamless_run):
    again = studio.generate(big(tiny_models, tiling="xy")).images[0]
    assert np.array_equal(pixels(again), pixels(seamless_run[0].images[0]))


def test_seamless_axes_wrap_like_the_interior(seamless_run):
    image = chw(seamless_run[0].images[0])
    assert seam_ratio(image, -1) < 1.6
    assert seam_ratio(image, -2) < 1.6


def test_a_different_seed_changes_the_picture(studio, tiny_models, seamless_run):
    other = studio.generate(big(tiny_models, tiling="xy", seed=8)).images[0]
    assert np.abs(pixels(other) - pixels(seamless_run[0].images[0])).mean() > 1


@pytest.mark.parametrize("stop_at", [1, 3, 4])  # in the base pass, after the encode, after the refine
def test_cancel_works_in_every_phase(studio, tiny_models, stop_at):
    cancel = threading.Event()
    seen = []

    def listen(p):
        seen.append(p.step)
        if p.step >= stop_at:
            cancel.set()

    with pytest.raises(CancelledError):
        studio.generate(big(tiny_models), on_progress=listen, cancel=cancel)
    assert seen[-1] == stop_at  # stopped at the next check, before any further step
    # the Studio is not left broken: the next job runs
    assert studio.generate(recipe(tiny_models.sd15)).images[0].size == (64, 64)


# ---- the tiled decode wraps like the seamless full decode ---------------------------------------


@pytest.fixture(scope="module")
def tiny_pipe(tiny_models):
    import test_prompts_tinykit as kit

    return kit.load("sd15", tiny_models)


@pytest.mark.parametrize("axes", ["x", "y", "xy"])
def test_tiled_decode_matches_the_seamless_whole_decode_at_the_wrapped_edges(tiny_pipe, axes):
    """The reference is the whole latent decoded at once by the seamless (circular) VAE. A tiled
    decode that did not wrap would differ most at the edges of the wrapped axes; one that wraps is
    as close there as in the interior (tiles differ from the whole decode only by their blend)."""
    from brushwork.engine.seamless import seamless
    from brushwork.engine.tiled import decode_tiled

    vae, f = tiny_pipe.vae, tiny_pipe.vae_scale_factor
    z = torch.randn(1, 4, 48, 56, generator=torch.Generator().manual_seed(3)) * vae.config.scaling_factor
    with seamless(tiny_pipe, axes), torch.inference_mode():
        whole = vae.decode(z / vae.config.scaling_factor).sample[0].clamp(-1, 1)
    whole = ((whole + 1) * 127.5).round()
    tiled_img = chw(decode_tiled(vae, z, f, 32, axes))
    diff = (tiled_img - whole).abs().mean(0)  # (H, W)
    interior = diff[16:-16, 16:-16].mean()
    band = 4
    if "x" in axes:
        assert torch.cat([diff[:, :band], diff[:, -band:]], 1).mean() < 2 * interior + 1
    if "y" in axes:
        assert torch.cat([diff[:band], diff[-band:]], 0).mean() < 2 * interior + 1
    # the same decode without wrapping is visibly off at those edges (the test can fail)
    unwrapped = (chw(decode_tiled(vae, z, f, 32, "")) - whole).abs().mean(0)
    edge = unwrapped[:, :band] if "x" in axes else unwrapped[:band]
    assert edge.mean() > 2 * interior + 1
