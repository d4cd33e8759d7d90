"""When step previews reach ``on_progress``: at once on the CPU; on CUDA without stalling the GPU.

On CUDA the preview is computed on the device and copied behind an event, so it may arrive one
callback late; the contract is the same either way: every step, in order, the last one before the
pipeline returns. The CUDA tests run on the GPU machine (benchmarks/gpu_session.sh).
"""

from __future__ import annotations

from dataclasses import replace
from types import SimpleNamespace

import numpy as np
import pytest
import torch
from brushwork.engine.progress import StepWatcher, latent_to_rgb

needs_cuda = pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")


def _latents(device: str, n: int = 3) -> list[torch.Tensor]:
    gen = torch.Generator().manual_seed(3)
    return [torch.randn(1, 4, 16, 12, generator=gen).to(device) for _ in range(n)]


def _drive(watcher: StepWatcher, latents: list[torch.Tensor], seen: list) -> list[int]:
    """Call the watcher as a pipeline does; returns how many previews had arrived after each call."""
    pipe = SimpleNamespace(num_timesteps=len(latents))
    arrived = []
    for i, latent in enumerate(latents):
        watcher(pipe, i, None, {"latents": latent})
        arrived.append(len(seen))
    return arrived


def test_cpu_previews_arrive_during_their_own_step():
    seen = []
    latents = _latents("cpu")
    arrived = _drive(StepWatcher(family="sd15", image_index=0, on_progress=seen.append, cancel=None), latents, seen)
    assert arrived == [1, 2, 3]
    assert [(p.step, p.total) for p in seen] == [(1, 3), (2, 3), (3, 3)]
    for p, latent in zip(seen, latents, strict=True):
        assert np.array_equal(np.asarray(p.preview), np.asarray(latent_to_rgb(latent, "sd15")))


@pytest.mark.parametrize("family", ["sd15", "sdxl"])
def test_latent_to_rgb_is_the_fixed_linear_map(family):
    """The picture a preview shows: x0 times the family's 4x3 matrix, [-1, 1] -> [0, 255]."""
    from brushwork.engine import progress

    latent = _latents("cpu", 1)[0]
    factors, bias = (progress.SDXL_FACTORS, progress.SDXL_BIAS) if family == "sdxl" else (
        progress.SD15_FACTORS, progress.SD15_BIAS)
    expected = np.einsum("chw,cr->hwr", latent[0].numpy().astype(np.float64), np.array(factors)) + np.array(bias)
    expected = np.round((np.clip(expected, -1, 1) + 1) * 127.5)
    got = np.asarray(latent_to_rgb(latent, family)).astype(np.float64)
    assert got.shape == (16, 12, 3) and np.abs(got - expected).max() <= 1


@pytest.mark.gpu
@needs_cuda
def test_cuda_previews_arrive_in_order_by_the_next_step_and_match_the_cpu_picture():
    seen = []
    latents = _latents("cuda")
    arrived = _drive(StepWatcher(family="sd15", image_index=2, on_progress=seen.append, cancel=None), latents, seen)
    assert arrived[0] in (0, 1) and arrived[1] >= 1 and arrived[2] == 3  # one late at most; the last flushed
    assert [(p.step, p.total, p.image_index) for p in seen] == [(1, 3, 2), (2, 3, 2), (3, 3, 2)]
    for p, latent in zip(seen, latents, strict=True):
        cpu = np.asarray(latent_to_rgb(latent.cpu(), "sd15")).astype(int)
        assert np.abs(np.asarray(p.preview).astype(int) - cpu).max() <= 1


@pytest.mark.gpu
@needs_cuda
def test_cuda_studio_previews_every_step_and_do_not_change_the_image(tiny_models):
    from brushwork import Recipe, Studio
    from brushwork.engine.fastpath import FastPath

    # linear previews (the async path) even where a tiny VAE happens to be in the HF cache
    studio = Studio(device="cuda", fast=replace(FastPath.for_device("cuda"), preview_vaes=()))
    recipe = Recipe(prompt="a red house", model=str(tiny_models.sd15), steps=4, width=64, height=64, seed=5,
                    sampler="Euler")
    seen = []
    with_previews = studio.generate(recipe, on_progress=seen.append).images[0]
    assert [p.step for p in seen] == [1, 2, 3, 4] and all(p.preview.size == (32, 32) for p in seen)
    assert np.array_equal(np.asarray(with_previews), np.asarray(studio.generate(recipe).images[0]))
