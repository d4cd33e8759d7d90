"""A recipe with a reference image through a real worker: the picture travels as an upload (by
hash), the adapter is found by name in the worker's model folders, and the pixels are the
in-process Studio's. A job after it, without references, is the plain job (no adapter state
left in the worker's warm pipeline)."""

from __future__ import annotations

import hashlib
import io

import numpy as np
import pytest
from brushwork.recipe import Reference
from brushwork.testing.tiny_ip_adapter import SD15_ADAPTER, ensure_tiny_ip_adapters
from PIL import Image
from worker_helpers import tiny_recipe

pytestmark = pytest.mark.xdist_group("worker-jobs")


def _pixels(png: bytes) -> np.ndarray:
    return np.asarray(Image.open(io.BytesIO(png)).convert("RGB"))


@pytest.mark.slow
def test_reference_recipe_runs_and_its_picture_is_uploaded(jobs_worker, tiny_models, tmp_path, monkeypatch):
    ensure_tiny_ip_adapters(tiny_models.root)
    rng = np.random.default_rng(3)
    path = tmp_path / "reference.png"
    Image.fromarray((rng.random((64, 64, 3)) * 255).astype(np.uint8)).save(path)
    ref = "sha256:" + hashlib.sha256(path.read_bytes()).hexdigest()
    client = jobs_worker.client()
    plain_before = client.generate(tiny_recipe(), timeout=120)
    assert client.missing([ref]) == [ref]
    recipe = tiny_recipe(references=[Reference(image=str(path), weight=1.0, model=SD15_ADAPTER)])
    remote = client.generate(recipe, timeout=120)
    assert client.missing([ref]) == []  # uploaded by the client, by its hash
    assert remote.recipe.references[0].image == ref and remote.recipe.references[0].model == SD15_ADAPTER
    plain_after = client.generate(tiny_recipe(), timeout=120)
    assert np.array_equal(_pixels(plain_before.png_bytes[0]), _pixels(plain_after.png_bytes[0]))
    assert not np.array_equal(_pixels(remote.png_bytes[0]), _pixels(plain_after.png_bytes[0]))

    monkeypatch.setenv("BRUSHWORK_MODEL_DIRS", str(tiny_models.root))
    import brushwork

    local = brushwork.Studio(device="cpu").generate(recipe)
    assert np.array_equal(_pixels(remote.png_bytes[0]), np.asarray(local.images[0].convert("RGB")))


@pytest.mark.slow
def test_relative_adapter_path_is_refused_before_the_job(jobs_worker, tiny_models, tmp_path):
    """references[i].model is checked like every model path (worker/model_paths.py): a relative
    path would name a file in the worker's own folder."""
    from brushwork.errors import RecipeError

    path = tmp_path / "reference.png"
    Image.new("RGB", (64, 64), (10, 200, 30)).save(path)
    client = jobs_worker.client()
    recipe = tiny_recipe(references=[Reference(image=str(path), model="relative/dir/adapter.safetensors")])
    with pytest.raises(RecipeError, match=r"references\[0\]\.model"):
        client.generate(recipe, timeout=120)
