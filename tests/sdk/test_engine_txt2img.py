"""txt2img through the real Studio on the tiny SD 1.5: reproducibility, batches, progress, cancel, save."""

from __future__ import annotations

import json
import threading

import numpy as np
import pytest
from brushwork import CancelledError, Lora
from brushwork.recipe import is_content_ref
from PIL import Image
from test_engine_support import DecodeCounter, gradient, last_base, module_studio, pixels, recipe, write_png

# One worker runs this whole module, so its tests share one Studio's loaded models.
pytestmark = pytest.mark.xdist_group("engine-txt2img")



@pytest.fixture(scope="module")
def studio(tmp_path_factory):
    return module_studio(tmp_path_factory)


def test_same_recipe_and_seed_gives_identical_pixels(studio, tiny_models):
    a = studio.generate(recipe(tiny_models.sd15)).images[0]
    b = studio.generate(recipe(tiny_models.sd15)).images[0]
    assert a.size == (64, 64) and a.mode == "RGB"
    assert np.array_equal(pixels(a), pixels(b))


def test_different_seeds_give_different_images(studio, tiny_models):
    a = studio.generate(recipe(tiny_models.sd15, seed=1)).images[0]
    b = studio.generate(recipe(tiny_models.sd15, seed=2)).images[0]
    assert np.abs(pixels(a) - pixels(b)).mean() > 1.0


def test_batch_seeds_and_each_image_reproduces_alone(studio, tiny_models):
    result = studio.generate(recipe(tiny_models.sd15, seed=500, batch=3))
    assert result.seeds == [500, 501, 502]
    assert len(result.images) == 3
    assert not np.array_equal(pixels(result.images[0]), pixels(result.images[1]))
    alone = studio.generate(recipe(tiny_models.sd15, seed=502)).images[0]
    assert np.array_equal(pixels(alone), pixels(result.images[2]))
    # and the per-image recipe says exactly that
    assert result.recipe_for(2).seed == 502 and result.recipe_for(2).batch == 1


def test_no_seed_picks_one_and_records_it(studio, tiny_models):
    result = studio.generate(recipe(tiny_models.sd15, seed=None))
    assert isinstance(result.recipe.seed, int) and 0 <= result.recipe.seed < 2**32
    again = studio.generate(recipe(tiny_models.sd15, seed=result.recipe.seed)).images[0]
    assert np.array_equal(pixels(again), pixels(result.images[0]))


@pytest.mark.parametrize("sampler", ["Euler", "DPM++ 2M Karras", "DDIM", "UniPC", "LCM"])
def test_samplers_run_and_differ_from_euler_a(studio, tiny_models, sampler):
    ref = studio.generate(recipe(tiny_models.sd15, steps=3)).images[0]
    out = studio.generate(recipe(tiny_models.sd15, steps=3, sampler=sampler)).images[0]
    assert out.size == (64, 64)
    assert not np.array_equal(pixels(ref), pixels(out))


def test_progress_every_step_with_latent_sized_previews(studio, tiny_models):
    seen = []
    studio.generate(recipe(tiny_models.sd15, steps=4, batch=2), on_progress=seen.append)
    assert [(p.image_index, p.step, p.total) for p in seen] == [
        (i, s, 4) for i in range(2) for s in range(1, 5)]
    for p in seen:
        assert isinstance(p.preview, Image.Image) and p.preview.mode == "RGB"
        assert p.preview.size == (32, 32)  # the tiny VAE downsamples by 2: latent size, no decode
    # previews change as denoising proceeds
    assert not np.array_equal(pixels(seen[0].preview), pixels(seen[3].preview))


def test_progress_does_not_change_the_image(studio, tiny_models):
    quiet = studio.generate(recipe(tiny_models.sd15)).images[0]
    watched = studio.generate(recipe(tiny_models.sd15), on_progress=lambda p: None).images[0]
    assert np.array_equal(pixels(quiet), pixels(watched))


def test_cancel_mid_run_raises_and_never_decodes(studio, tiny_models):
    studio.generate(recipe(tiny_models.sd15))  # loaded
    vae = last_base(studio).original_vae
    counter = DecodeCounter(vae)
    cancel = threading.Event()
    steps = []

    def on_progress(p):
        steps.append(p.step)
        if p.step == 2:
            cancel.set()

    try:
        with pytest.raises(CancelledError):
            studio.generate(recipe(tiny_models.sd15, steps=6, batch=2), on_progress=on_progress, cancel=cancel)
    finally:
        counter.close()
    assert steps == [1, 2]  # stopped at the very next step check
    assert counter.calls == 0
    # the Studio is still usable
    assert studio.generate(recipe(tiny_models.sd15)).images[0].size == (64, 64)


def test_cancel_without_progress_listener_and_before_start(studio, tiny_models):
    cancel = threading.Event()
    cancel.set()
    with pytest.raises(CancelledError):
        studio.generate(recipe(tiny_models.sd15), cancel=cancel)


def test_save_batch_writes_numbered_pngs_with_own_seed(studio, tiny_models, tmp_path):
    result = studio.generate(recipe(tiny_models.sd15, seed=77, batch=2))
    paths = result.save(tmp_path / "shot.png")
    assert [p.name for p in paths] == ["shot-1.png", "shot-2.png"]
    for path, seed in zip(paths, (77, 78), strict=True):
        with Image.open(path) as img:
            img.load()
            assert "parameters" in img.info
            text = img.info.get("brushwork")
        assert f"Seed: {seed}" in img.info["parameters"]
        data = json.loads(text)
        stored = data.get("recipe", data)
        assert stored["seed"] == seed and stored["batch"] == 1
    assert not list(tmp_path.glob("*.part"))
    single = studio.generate(recipe(tiny_models.sd15)).save(tmp_path / "one.png")
    assert [p.name for p in single] == ["one.png"]


def test_inputs_enter_the_asset_store_as_sha256_refs(studio, tiny_models, tmp_path):
    init = write_png(tmp_path / "init.png", gradient())
    result = studio.generate(recipe(tiny_models.sd15, init_image=init, strength=0.5))
    ref = result.recipe.init_image
    assert is_content_ref(ref)
    assert studio.assets.get(ref) == (tmp_path / "init.png").read_bytes()
    assert result.hashes["init_image"] == ref.split(":", 1)[1]


def test_textual_inversion_embedding_changes_the_image_where_its_token_is(studio, tiny_models):
    from brushwork import Embedding

    # before the embedding is loaded, "tinystyle" is plain words (once loaded a token stays known)
    plain = studio.generate(recipe(tiny_models.sd15, prompt="a cat, tinystyle")).images[0]
    with_emb = dict(embeddings=[Embedding(name=str(tiny_models.embedding), token="tinystyle")])
    used = studio.generate(recipe(tiny_models.sd15, prompt="a cat, tinystyle", **with_emb))
    assert not np.array_equal(pixels(used.images[0]), pixels(plain))
    assert len(used.hashes[f"embedding:{tiny_models.embedding}"]) == 64


def test_lora_tags_move_from_prompt_to_loras(studio, tiny_models):
    prompt = f"a cat <lora:{tiny_models.lora}:0.5>"
    result = studio.generate(recipe(tiny_models.sd15, prompt=prompt))
    assert result.recipe.prompt == "a cat"
    assert result.recipe.loras == [Lora(name=str(tiny_models.lora), weight=0.5)]
    plain = studio.generate(recipe(tiny_models.sd15, prompt="a cat")).images[0]
    assert not np.array_equal(pixels(plain), pixels(result.images[0]))
    # and switching the LoRA off again gives the plain image back
    again = studio.generate(recipe(tiny_models.sd15, prompt="a cat")).images[0]
    assert np.array_equal(pixels(plain), pixels(again))


def test_save_to_a_stem_adds_png_and_keeps_dots(studio, tiny_models, tmp_path):
    result = studio.generate(recipe(tiny_models.sd15))
    assert [p.name for p in result.save(tmp_path / "job.2026-11-22")] == ["job.2026-11-22.png"]
    from brushwork.metadata import read_metadata

    meta = read_metadata(tmp_path / "job.2026-11-22.png")
    assert meta.recipe == result.recipe_for(0)
    assert meta.hashes["model"] == result.hashes["model"] and len(meta.hashes["model"]) == 64
