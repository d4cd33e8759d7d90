"""Model paths through the worker: the same Recipe (model/LoRA/VAE as file paths) gives the same
pixels in-process and through brushwork.connect(); paths are taken from loopback clients only
(unless the operator allows others), safetensors or diffusers folders only, pickles refused."""

from __future__ import annotations

import io

import numpy as np
import pytest
from brushwork.errors import RecipeError
from brushwork.recipe import Lora
from brushwork.worker import model_paths
from brushwork.worker.server import parse_recipe
from PIL import Image
from worker_helpers import tiny_recipe

pytestmark = pytest.mark.xdist_group("worker-jobs")


class NoAssets:
    def has(self, ref: str) -> bool:
        return False


def pixels(image) -> np.ndarray:
    if isinstance(image, bytes):
        image = Image.open(io.BytesIO(image))
    return np.asarray(image.convert("RGB"))


def test_loopback_clients_may_name_safetensors_files_and_diffusers_folders(tiny_models):
    recipe = tiny_recipe(model=str(tiny_models.sd15_single_file), vae=str(tiny_models.vae),
                         loras=[Lora(str(tiny_models.lora), 0.8)])
    for peer in ("127.0.0.1", "::1", "::ffff:127.0.0.1"):
        assert parse_recipe(recipe.to_dict(), NoAssets(), peer=peer).model == str(tiny_models.sd15_single_file)
    parse_recipe(tiny_recipe(model=str(tiny_models.sd15)).to_dict(), NoAssets(), peer="127.0.0.1")


def test_other_machines_get_paths_refused_unless_the_operator_allows(tiny_models, monkeypatch):
    data = tiny_recipe(model=str(tiny_models.sd15)).to_dict()
    with pytest.raises(RecipeError, match="only from clients on the worker's own machine"):
        parse_recipe(data, NoAssets(), peer="192.168.1.20")
    monkeypatch.setenv(model_paths.ENV_REMOTE_PATHS, "1")
    assert parse_recipe(data, NoAssets(), peer="192.168.1.20").model == str(tiny_models.sd15)
    # names were never affected
    monkeypatch.delenv(model_paths.ENV_REMOTE_PATHS)
    assert parse_recipe(tiny_recipe().to_dict(), NoAssets(), peer="192.168.1.20").model == "tiny-sd15"


@pytest.mark.parametrize("name, match", [
    ("https://example.com/model.safetensors", "never downloads from URLs"),
    ("./models/x.safetensors", "must be absolute"),
    ("/no/such/model.safetensors", "no such file or folder"),
])
def test_bad_paths_are_one_line_errors(name, match):
    with pytest.raises(RecipeError, match=match) as info:
        parse_recipe(tiny_recipe(model=name).to_dict(), NoAssets(), peer="127.0.0.1")
    assert "\n" not in str(info.value)


def test_pickles_and_other_files_are_refused(tmp_path, monkeypatch):
    monkeypatch.setenv("BRUSHWORK_HOME", str(tmp_path / "home"))
    pickle = tmp_path / "old.ckpt"
    pickle.write_bytes(b"\x80\x02not really")
    with pytest.raises(RecipeError, match="pickle checkpoint"):
        parse_recipe(tiny_recipe(loras=[Lora(str(pickle))]).to_dict(), NoAssets(), peer="127.0.0.1")
    monkeypatch.setenv("BRUSHWORK_ALLOW_PICKLE", "1")
    parse_recipe(tiny_recipe(loras=[Lora(str(pickle))]).to_dict(), NoAssets(), peer="127.0.0.1")
    odd = tmp_path / "notes.txt"
    odd.write_text("x")
    with pytest.raises(RecipeError, match="unsupported model format"):
        parse_recipe(tiny_recipe(model=str(odd)).to_dict(), NoAssets(), peer="127.0.0.1")
    with pytest.raises(RecipeError, match="not a diffusers model folder"):
        parse_recipe(tiny_recipe(model=str(tmp_path)).to_dict(), NoAssets(), peer="127.0.0.1")


@pytest.mark.slow
def test_same_recipe_with_file_paths_same_pixels_in_process_and_through_the_worker(jobs_worker, tiny_models):
    import brushwork

    recipe = tiny_recipe(model=str(tiny_models.sd15_single_file), loras=[Lora(str(tiny_models.lora), 0.8)],
                         vae=str(tiny_models.vae))
    remote = jobs_worker.client().generate(recipe)
    local = brushwork.Studio(device="cpu").generate(recipe)
    assert remote.seeds == local.seeds == [7]
    assert np.array_equal(pixels(remote.images[0]), pixels(local.images[0]))
    assert remote.recipe.model == str(tiny_models.sd15_single_file)
