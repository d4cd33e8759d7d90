"""Shared helpers for the engine tests (imported by test_engine_*.py / test_studio*.py).

One Studio per test module keeps the tiny pipelines loaded across tests, as the worker does.
Its asset store lives in a per-module temp home: never the user's real state dir.
"""

from __future__ import annotations

import io

import numpy as np
import pytest
from brushwork import Recipe
from PIL import Image

SIZE = 64
STEPS = 2


def module_studio(tmp_path_factory, **kwargs):
    from brushwork.engine import Studio

    home = tmp_path_factory.mktemp("engine-home")
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("BRUSHWORK_HOME", str(home))
        kwargs.setdefault("device", "cpu")
        return Studio(**kwargs)


def recipe(model, **changes) -> Recipe:
    base = dict(prompt="a red apple on a table", model=str(model), width=SIZE, height=SIZE,
                steps=STEPS, seed=1234, sampler="Euler a", cfg=5.0)
    base.update(changes)
    return Recipe(**base)


def pixels(image) -> np.ndarray:
    return np.asarray(image.convert("RGB"), dtype=np.int16)


def mean_diff(a, b) -> float:
    return float(np.abs(pixels(a) - pixels(b)).mean())


def write_png(path, image: Image.Image):
    image.save(path, format="PNG")
    return str(path)


def gradient(size=SIZE, seed=0) -> Image.Image:
    """A picture with structure (gradient + noise) so ControlNets and img2img have content."""
    rng = np.random.default_rng(seed)
    y, x = np.mgrid[0:size, 0:size]
    base = np.stack([x * 255 / size, y * 255 / size, (x + y) * 127 / size], axis=-1)
    noise = rng.integers(-20, 20, size=base.shape)
    return Image.fromarray(np.clip(base + noise, 0, 255).astype(np.uint8), "RGB")


def square_mask(size=SIZE, box=(16, 16, 48, 48)) -> Image.Image:
    mask = Image.new("L", (size, size), 0)
    mask.paste(255, box)
    return mask


def png_bytes(image: Image.Image) -> bytes:
    buf = io.BytesIO()
    image.save(buf, format="PNG")
    return buf.getvalue()


class DecodeCounter:
    """Counts real VAE decoder forward passes with a forward hook (no mock: the VAE still runs)."""

    def __init__(self, vae):
        self.calls = 0
        self._handle = vae.decoder.register_forward_hook(self._hook)

    def _hook(self, *_):
        self.calls += 1

    def close(self):
        self._handle.remove()


def last_base(studio):
    """The most recently used loaded base (the LRU keeps it last)."""
    return list(studio.pipelines._bases.values())[-1]
