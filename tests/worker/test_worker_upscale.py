"""An upscale recipe through a real worker: the picture travels as an upload, the upscaler as an
absolute path from this machine (as every model path); the pixels are the in-process Studio's.
A pickle upscaler is refused before the job is queued, and the worker carries on."""

from __future__ import annotations

import io

import numpy as np
import pytest
from brushwork.errors import RecipeError
from brushwork.recipe import Recipe, Upscale
from brushwork.testing.tiny_upscaler import build_tiny_esrgan
from PIL import Image

pytestmark = pytest.mark.xdist_group("worker-jobs")


@pytest.mark.slow
def test_upscale_recipe_runs_through_the_worker(jobs_worker, tmp_path):
    Image.fromarray((np.random.default_rng(2).random((64, 80, 3)) * 255).astype(np.uint8)).save(tmp_path / "in.png")
    model = build_tiny_esrgan(tmp_path / "x2.safetensors", scale=2)
    recipe = Recipe(init_image=str(tmp_path / "in.png"), strength=0.0, width=80, height=64, seed=5, steps=4,
                    cfg=1.0, sampler="Euler", tiling="x", upscale=Upscale(model=str(model), factor=2.0))
    client = jobs_worker.client()
    remote = client.generate(recipe, timeout=120)
    assert remote.recipe.upscale.model == str(model) and remote.recipe.task == "upscale"
    remote_pixels = np.asarray(Image.open(io.BytesIO(remote.png_bytes[0])).convert("RGB"))
    assert remote_pixels.shape == (128, 160, 3)

    import brushwork

    local = brushwork.Studio(device="cpu").generate(recipe)
    assert np.array_equal(remote_pixels, np.asarray(local.images[0].convert("RGB")))

    pickled = build_tiny_esrgan(tmp_path / "x2.pth", scale=2)
    with pytest.raises(RecipeError, match="pickle"):
        client.generate(recipe.replace(upscale=Upscale(model=str(pickled), factor=2.0)), timeout=60)
    assert client.generate(recipe, timeout=120).png_bytes  # the worker is still there
