"""A recipe with regions through a real worker: the region's mask travels as an upload (by hash),
and the pixels are the in-process Studio's."""

from __future__ import annotations

import hashlib
import io

import numpy as np
import pytest
from brushwork.recipe import Region
from PIL import Image
from worker_helpers import tiny_recipe

pytestmark = pytest.mark.xdist_group("worker-jobs")


@pytest.mark.slow
def test_regions_recipe_runs_and_its_mask_is_uploaded(jobs_worker, tiny_models, tmp_path, monkeypatch):
    mask = Image.new("L", (64, 64), 0)
    mask.paste(255, (0, 0, 32, 64))
    path = tmp_path / "left-region.png"
    mask.save(path)
    ref = "sha256:" + hashlib.sha256(path.read_bytes()).hexdigest()
    client = jobs_worker.client()
    assert client.missing([ref]) == [ref]
    recipe = tiny_recipe(regions=[Region(mask=str(path), prompt="a blue car", negative_prompt="blurry")])
    remote = client.generate(recipe, timeout=120)
    assert client.missing([ref]) == []  # uploaded by the client, by its hash
    assert remote.recipe.regions[0].mask == ref and remote.recipe.regions[0].prompt == "a blue car"

    monkeypatch.setenv("BRUSHWORK_MODEL_DIRS", str(tiny_models.root))
    import brushwork

    local = brushwork.Studio(device="cpu").generate(recipe)
    remote_pixels = np.asarray(Image.open(io.BytesIO(remote.png_bytes[0])).convert("RGB"))
    assert np.array_equal(remote_pixels, np.asarray(local.images[0].convert("RGB")))
    plain = client.generate(tiny_recipe(), timeout=120)
    assert not np.array_equal(remote_pixels, np.asarray(Image.open(io.BytesIO(plain.png_bytes[0])).convert("RGB")))


def test_a_regions_lora_path_is_checked_like_every_model_path(tiny_models, tmp_path):
    """Region LoRAs name files like the recipe's: from other machines a path is refused."""
    from brushwork.errors import RecipeError
    from brushwork.recipe import Lora
    from brushwork.worker.server import parse_recipe

    class NoAssets:
        def has(self, ref: str) -> bool:
            return True

    region = Region(mask="sha256:" + "ab" * 32, prompt="a sky", loras=[Lora(str(tiny_models.lora))])
    data = tiny_recipe(regions=[region]).to_dict()
    assert parse_recipe(data, NoAssets(), peer="127.0.0.1").regions[0].loras[0].name == str(tiny_models.lora)
    with pytest.raises(RecipeError, match=r"regions\[0\]\.loras\[0\]\.name.*only from clients"):
        parse_recipe(data, NoAssets(), peer="192.168.1.20")
