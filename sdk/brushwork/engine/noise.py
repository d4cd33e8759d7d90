"""Seeded noise that is the same whatever precision the models run in.

diffusers draws a job's noise (the initial latents, img2img's noise, every ancestral step) with
``randn_tensor(shape, generator, dtype=<the model's dtype>)``, and torch's CPU normal kernel fills
float16/bfloat16 tensors by another route than float32: on some torch builds every value differs,
on torch 2.13 the last 16 values of any tensor whose size is not a multiple of 16 do (a 520x520
SD 1.5 latent) and the generator is left in another state, so every later draw differs too. So one
seed painted one picture on the plain fp32 path and another on the fp16 fast path: the H200 run's
``test_cuda_fast_path_matches_fp32`` saw a mean pixel difference of 44.5, the distance between two
seeds, while fp16 arithmetic alone moves the tiny model's picture by ~0.1.

Our generators therefore draw in float32 and cast, as the tiled path (tiled_denoise.py), A1111 and
ComfyUI do: a seed means one picture on every device and at every precision. Only generators made
here are affected; a plain diffusers pipeline in the same process keeps diffusers' behaviour.
"""

from __future__ import annotations

import sys
import threading

import torch
from diffusers.utils import torch_utils

_ORIGINAL = torch_utils.randn_tensor
_REDUCED = (torch.float16, torch.bfloat16)
_lock = threading.Lock()


class SeedGenerator(torch.Generator):
    """A CPU generator whose noise diffusers draws in float32 (see the module doc)."""


def _ours(generator) -> bool:
    if isinstance(generator, list):
        return bool(generator) and all(isinstance(g, SeedGenerator) for g in generator)
    return isinstance(generator, SeedGenerator)


def randn_tensor(shape, generator=None, device=None, dtype=None, layout=None):
    """diffusers' randn_tensor, drawing in float32 for our generators when the models are fp16/bf16."""
    if dtype in _REDUCED and _ours(generator):
        return _ORIGINAL(shape, generator=generator, device=device, dtype=torch.float32, layout=layout).to(dtype)
    return _ORIGINAL(shape, generator=generator, device=device, dtype=dtype, layout=layout)


def seed_generator(seed: int, *users) -> SeedGenerator:
    """A CPU generator seeded ``seed`` (the same noise on every device) whose draws through
    ``users`` (a pipeline and its scheduler: the objects whose code calls randn_tensor) are float32.

    diffusers' modules import randn_tensor by name, so the name is rebound in the modules that
    define the users' classes (and their bases), once; a module with a randn_tensor of its own is
    left alone."""
    with _lock:
        for obj in users:
            for cls in type(obj).__mro__:
                module = sys.modules.get(cls.__module__)
                if module is not None and getattr(module, "randn_tensor", None) is _ORIGINAL:
                    setattr(module, "randn_tensor", randn_tensor)  # noqa: B010 (a module, typed as such)
    generator = SeedGenerator("cpu")
    generator.manual_seed(int(seed))
    return generator
