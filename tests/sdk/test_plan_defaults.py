"""Defaults from the model in the Python API (issue 19) and one validation per generate (issue 14).

A Recipe leaves size, steps, CFG and sampler unset (None, ``recipe.MODEL_DEFAULTED``); the Studio
fills them from the model it resolves (``models/defaults.py``, the table ``--help`` and ``models
info`` show), validates once, and the result's recipe (and so the PNG) records what ran. Explicit
values always win. The reference for "the model's defaults" is ``defaults_for_ref`` of the model
as the resolver finds it, so a retrained demo with new recommended settings keeps these true.
"""

from __future__ import annotations

import json

import numpy as np
import pytest
from brushwork.engine.plan import ModelFacts, plan
from brushwork.errors import RecipeError
from brushwork.models import bundled, sources
from brushwork.models.defaults import defaults_for_ref
from brushwork.recipe import MODEL_DEFAULTED, Recipe

pytestmark = pytest.mark.xdist_group("plan-defaults")

DEMO = bundled.NAME
PROMPT = "red brick wall"


def sampling(recipe: Recipe) -> dict:
    return {name: getattr(recipe, name) for name in MODEL_DEFAULTED}


@pytest.fixture(scope="module")
def demo_defaults() -> dict:
    return defaults_for_ref(sources.resolve(DEMO, "pipeline")).as_fields()


@pytest.fixture(scope="module")
def studio(tmp_path_factory):
    import brushwork

    return brushwork.Studio(device="cpu")


def test_a_recipe_leaves_the_sampling_fields_to_the_model_by_default():
    r = Recipe(prompt=PROMPT)
    assert r.unset == MODEL_DEFAULTED and r.validate() is r
    assert Recipe(prompt=PROMPT, steps=3, width=128).unset == ("height", "cfg", "sampler")
    filled = r.with_defaults({"width": 64, "height": 96, "steps": 4, "cfg": 2.0, "sampler": "Euler"})
    assert sampling(filled) == {"width": 64, "height": 96, "steps": 4, "cfg": 2.0, "sampler": "Euler"}
    assert Recipe(prompt=PROMPT, steps=9).with_defaults({"steps": 4}).steps == 9  # explicit wins
    with pytest.raises(RecipeError, match="width: is unset"):
        _ = r.size
    # JSON round trip keeps "unset" apart from any value
    assert Recipe.from_json(r.to_json()).unset == MODEL_DEFAULTED


def test_the_python_api_uses_the_demo_s_defaults_and_records_them(studio, demo_defaults, tmp_path):
    result = studio.generate(Recipe(prompt=PROMPT, model=DEMO, seed=5))
    assert sampling(result.recipe) == demo_defaults
    assert result.images[0].size == (demo_defaults["width"], demo_defaults["height"])
    # The old hard-coded Recipe defaults (512x512, 25 steps, CFG 7) would have been wrong here.
    assert (demo_defaults["width"], demo_defaults["steps"]) != (512, 25)

    from brushwork.metadata import read_metadata

    [path] = result.save(tmp_path / "demo.png")
    meta = read_metadata(path)
    assert sampling(meta.recipe) == demo_defaults and not meta.recipe.unset
    # ... and so does the A1111 text other tools read
    assert meta.parameters["Steps"] == str(demo_defaults["steps"])
    assert meta.parameters["Sampler"] == demo_defaults["sampler"]
    assert meta.parameters["Size"] == f"{demo_defaults['width']}x{demo_defaults['height']}"
    # rerun: the recorded recipe is complete, so nothing is left to a default and the pixels repeat
    again = studio.generate(meta.recipe)
    assert again.recipe.to_dict() == meta.recipe.to_dict()
    assert np.array_equal(np.asarray(again.images[0]), np.asarray(result.images[0]))


def test_explicit_values_win_over_the_model_s(studio, demo_defaults):
    explicit = {"width": 96, "height": 64, "steps": 2, "cfg": 3.0, "sampler": "Euler"}
    assert all(explicit[k] != demo_defaults[k] for k in ("width", "steps", "cfg", "sampler"))
    result = studio.generate(Recipe(prompt=PROMPT, model=DEMO, seed=5, **explicit))
    assert sampling(result.recipe) == explicit and result.images[0].size == (96, 64)
    # partly explicit: the rest comes from the model
    mixed = studio.prepare(Recipe(prompt=PROMPT, model=DEMO, steps=3))
    assert sampling(mixed) == {**demo_defaults, "steps": 3}


def test_a_default_that_breaks_a_rule_is_named_before_any_model_loads(studio, tmp_path):
    """Filled values are checked with the rest: img2img at strength 0.01 of the model's steps
    runs no step, which the one validation says (prepare resolves the model, loads nothing)."""
    from PIL import Image

    init = tmp_path / "init.png"
    Image.new("RGB", (64, 64), (90, 40, 30)).save(init)
    with pytest.raises(RecipeError, match="runs no denoising step"):
        studio.prepare(Recipe(prompt=PROMPT, model=DEMO, init_image=str(init), strength=0.01))


def test_an_old_recipe_json_with_every_value_runs_exactly_as_written(studio):
    """A recipe from before (every sampling field written, as every PNG and saved JSON has) is
    taken as it is: no default touches it and its plan is the one those values give."""
    old = {"prompt": PROMPT, "negative_prompt": "", "model": DEMO, "vae": "", "loras": [], "embeddings": [],
           "sampler": "Euler a", "steps": 25, "cfg": 7.0, "width": 512, "height": 512, "seed": 3, "batch": 1,
           "init_image": None, "strength": 0.75, "mask": None, "mask_grow": 0, "mask_feather": 4,
           "controls": [], "tiling": "", "preset": "", "schema": 1}
    recipe = Recipe.from_json(json.dumps(old))
    prepared = studio.prepare(recipe)
    assert {k: prepared.to_dict()[k] for k in old} == old
    facts = ModelFacts.for_family("sd15")
    assert plan(prepared, facts) == plan(recipe.validate(), facts)


def test_validate_runs_once_per_generate(studio, monkeypatch):
    """Issue 14: the Recipe is validated at its boundary (Studio.prepare), once; plan() and the
    executor trust it (docs/architecture.md)."""
    calls = []
    original = Recipe.validate

    def counting(self):
        calls.append(self)
        return original(self)

    monkeypatch.setattr(Recipe, "validate", counting)
    studio.generate(Recipe(prompt=PROMPT, model=DEMO, seed=1, steps=1, width=64, height=64))
    assert len(calls) == 1
    calls.clear()
    studio.generate(Recipe(prompt=PROMPT, model=DEMO, seed=1, steps=1))  # the rest from the model
    assert len(calls) == 1


def test_batch_rows_take_the_model_s_defaults_where_the_runner_sees_the_model(tmp_path, demo_defaults):
    """A batch fills a row like the Studio, from the model as this machine resolves it (so the
    output name is the hash of the recipe its PNG carries); a model only a worker has leaves them
    unset, and a PNG with the worker's filled values still verifies as that row's."""
    from brushwork.batch.identity import verify_output
    from brushwork.batch.manifest import read_manifest
    from brushwork.batch.preflight import plan_rows
    from brushwork.batch.runners import local_model_defaults
    from brushwork.metadata import save_png
    from PIL import Image

    manifest = tmp_path / "m.jsonl"
    manifest.write_text(json.dumps({"prompt": PROMPT, "model": DEMO, "seed": 1, "steps": 3}) + "\n")
    [row] = plan_rows(read_manifest(manifest), tmp_path, tmp_path, model_defaults=local_model_defaults)
    assert sampling(row.recipe) == {**demo_defaults, "steps": 3}
    [remote] = plan_rows(read_manifest(manifest), tmp_path, tmp_path)  # defaults unknown here
    assert remote.recipe.unset == ("width", "height", "cfg", "sampler") and remote.pixels == 0
    png = save_png(Image.new("RGB", (64, 64)), tmp_path / "made.png", row.recipe)
    assert verify_output(png, row.recipe) == "" and verify_output(png, remote.recipe) == ""
    other = save_png(Image.new("RGB", (64, 64)), tmp_path / "other.png", row.recipe.replace(steps=4))
    assert verify_output(other, remote.recipe) == "its recipe differs from this row's"
