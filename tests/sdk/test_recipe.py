"""The Recipe: JSON round trip for any valid recipe, and validation naming every bad field."""

import json

import pytest
from brushwork.errors import RecipeError
from brushwork.recipe import (
    CONTROL_KINDS,
    SAMPLERS,
    Control,
    Embedding,
    Lora,
    Recipe,
    extract_lora_tags,
    parse_lora_spec,
)
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

SHA = "sha256:" + "0123456789abcdef" * 4
text = st.text(alphabet=st.characters(blacklist_characters="\x00", blacklist_categories=("Cs",)), max_size=40)
refs = st.one_of(st.just(SHA), st.text(alphabet="abcdefgh/._-", min_size=1, max_size=20))
unit = st.floats(0.0, 1.0, allow_nan=False)


@st.composite
def controls(draw):
    kind = draw(st.sampled_from(CONTROL_KINDS))
    start = draw(st.floats(0.0, 0.9, allow_nan=False))
    end = draw(st.floats(start + 0.05, 1.0, allow_nan=False))
    signal, image = None, None
    if kind == "depth" and draw(st.booleans()):
        signal = {"data": SHA, "width": draw(st.integers(1, 64)), "height": draw(st.integers(1, 64)),
                  "format": draw(st.sampled_from(["f32le", "npy"])), "near": draw(st.none() | st.floats(0, 10)),
                  "far": None, "invert": draw(st.booleans())}
    elif kind == "pose" and draw(st.booleans()):
        signal = {"people": [{"pose_keypoints_2d": [1.0, 2.0, 1.0] * 18}], "canvas_width": 64, "canvas_height": 64}
    elif kind != "inpaint" or draw(st.booleans()):
        image = draw(refs)
    return Control(kind=kind, image=image, signal=signal, strength=draw(st.floats(0, 4, allow_nan=False)),
                   start=start, end=end, model=draw(text), preprocess=draw(st.sampled_from(["none", "canny"])))


@st.composite
def recipes(draw):
    init = draw(st.none() | refs)
    steps = draw(st.integers(1, 200))
    # img2img runs int(steps * strength) steps: at least one must remain
    strength = draw(st.floats(0.01, 1.0))
    if init and int(steps * strength) < 1:
        strength = 1.0
    return Recipe(
        prompt=draw(text), negative_prompt=draw(text), model=draw(text), vae=draw(text),
        loras=draw(st.lists(st.builds(Lora, name=st.text("abc/", min_size=1, max_size=8),
                                      weight=st.floats(-4, 4, allow_nan=False)), max_size=3)),
        embeddings=draw(st.lists(st.builds(Embedding, name=st.just("e"), token=text), max_size=2)),
        sampler=draw(st.sampled_from(SAMPLERS)), steps=steps,
        cfg=draw(st.floats(0, 30, allow_nan=False)),
        width=draw(st.integers(8, 512)) * 8, height=draw(st.integers(8, 512)) * 8,
        seed=draw(st.none() | st.integers(0, 2**32 - 1)), batch=draw(st.integers(1, 16)),
        init_image=init, strength=strength,
        mask=draw(st.none() | refs) if init else None,
        mask_grow=draw(st.integers(0, 256)), mask_feather=draw(st.integers(0, 256)),
        controls=draw(st.lists(controls(), max_size=3)), tiling=draw(st.sampled_from(["", "x", "y", "xy"])),
        preset=draw(st.sampled_from(["", "live-fast"])),
    )


@settings(max_examples=80, suppress_health_check=[HealthCheck.too_slow])
@given(recipes())
def test_any_valid_recipe_round_trips_through_json(recipe):
    recipe.validate()
    again = Recipe.from_json(recipe.to_json())
    assert again == recipe
    assert again.validate() is again
    assert json.loads(again.to_json()) == json.loads(recipe.to_json())


@settings(max_examples=50)
@given(recipes())
def test_replace_copies_never_share_lists(recipe):
    copy = recipe.replace()
    assert copy == recipe
    copy.controls.append(Control(kind="depth", image="x"))
    copy.loras.append(Lora("x"))
    assert len(copy.controls) == len(recipe.controls) + 1 and len(copy.loras) == len(recipe.loras) + 1


BAD_FIELDS = [
    (dict(schema=2), "schema"), (dict(prompt=5), "prompt"), (dict(prompt="a\x00b"), "prompt"),
    (dict(negative_prompt=None), "negative_prompt"), (dict(model=1), "model"), (dict(vae=[]), "vae"),
    (dict(preset=3), "preset"), (dict(sampler="Fast"), "sampler"), (dict(steps=0), "steps"),
    (dict(steps=201), "steps"), (dict(steps=2.5), "steps"), (dict(steps=True), "steps"), (dict(steps="20"), "steps"),
    (dict(cfg=-1), "cfg"), (dict(cfg=float("inf")), "cfg"), (dict(cfg=float("nan")), "cfg"),
    (dict(width=13), "width"), (dict(width=516), "width"), (dict(height=8192), "height"),
    (dict(seed=-1), "seed"), (dict(seed=2**32), "seed"), (dict(batch=0), "batch"), (dict(batch=17), "batch"),
    (dict(init_image=""), "init_image"), (dict(init_image="sha256:abc"), "init_image"),
    (dict(init_image="a.png", strength=0), "strength"), (dict(strength=1.5), "strength"),
    (dict(mask="m.png"), "mask"), (dict(init_image="a.png", mask=""), "mask"),
    (dict(mask_grow=-1), "mask_grow"), (dict(mask_feather=300), "mask_feather"),
    (dict(tiling="z"), "tiling"), (dict(loras="x"), "loras"), (dict(loras=[Lora("")]), "loras[0].name"),
    (dict(loras=[Lora("a", 5)]), "loras[0].weight"), (dict(loras=[Lora("a")] * 9), "loras"),
    (dict(embeddings=[Embedding("")]), "embeddings[0].name"),
    (dict(controls=[Control(kind="blur", image="a")]), "controls[0].kind"),
    (dict(controls=[Control(kind="depth")]), "controls[0]"),
    (dict(controls=[Control(kind="depth", image="a", signal={"data": SHA})]), "controls[0]"),
    (dict(controls=[Control(kind="canny", signal={})]), "controls[0].signal"),
    (dict(controls=[Control(kind="depth", signal={"width": 4, "height": 4})]), "controls[0].signal.data"),
    (dict(controls=[Control(kind="depth", signal={"data": SHA, "width": 0, "height": 4})]), "controls[0].signal.width"),
    (dict(controls=[Control(kind="depth", signal={"data": SHA, "width": 4, "height": 4, "format": "exr"})]),
     "controls[0].signal.format"),
    (dict(controls=[Control(kind="depth", signal={"data": SHA, "width": 4, "height": 4, "near": "x"})]),
     "controls[0].signal.near"),
    (dict(controls=[Control(kind="depth", signal={"data": SHA, "width": 4, "height": 4, "invert": "yes"})]),
     "controls[0].signal.invert"),
    (dict(controls=[Control(kind="pose", signal={"people": {}})]), "controls[0].signal.people"),
    (dict(controls=[Control(kind="depth", image="a", strength=5)]), "controls[0].strength"),
    (dict(controls=[Control(kind="depth", image="a", start=0.5, end=0.5)]), "controls[0].end"),
    (dict(controls=[Control(kind="depth", image="a", model=3)]), "controls[0].model"),
]


@pytest.mark.parametrize("changes, field", BAD_FIELDS, ids=[f for _, f in BAD_FIELDS])
def test_validation_names_the_field(changes, field):
    with pytest.raises(RecipeError) as err:
        Recipe(**changes).validate()
    assert err.value.field == field
    assert str(err.value).startswith(f"{field}: ") and "\n" not in str(err.value)


def test_from_dict_names_unknown_fields_and_shapes():
    with pytest.raises(RecipeError, match="^stepz: unknown field"):
        Recipe.from_dict({"stepz": 3})
    with pytest.raises(RecipeError, match=r"^controls\[0\]\.colour: unknown field"):
        Recipe.from_dict({"controls": [{"kind": "depth", "image": "a", "colour": 1}]})
    with pytest.raises(RecipeError, match=r"^loras\[0\]: must be an object"):
        Recipe.from_dict({"loras": [3]})
    with pytest.raises(RecipeError, match="^recipe: is not valid JSON"):
        Recipe.from_json("{")
    with pytest.raises(RecipeError, match="^recipe: must be an object"):
        Recipe.from_json("[]")


def test_from_dict_normalises_whole_floats_and_lora_shorthand():
    r = Recipe.from_dict({"steps": 20.0, "width": 512.0, "seed": 7.0, "loras": ["detail:0.5", "plain"]})
    assert (r.steps, r.width, r.seed) == (20, 512, 7) and isinstance(r.steps, int)
    assert r.loras == [Lora("detail", 0.5), Lora("plain", 1.0)]


def test_task_and_refs():
    r = Recipe(init_image="a.png", mask="m.png", controls=[Control(kind="depth", signal={"data": SHA, "width": 1,
                                                                                          "height": 1})])
    assert r.task == "inpaint" and Recipe(init_image="a").task == "img2img" and Recipe().task == "txt2img"
    assert r.image_refs() == {"init_image": "a.png", "mask": "m.png", "controls[0].signal.data": SHA}
    mapped = r.map_refs(lambda ref: ref.upper())
    assert mapped.init_image == "A.PNG" and mapped.controls[0].signal["data"] == SHA.upper()
    assert r.init_image == "a.png"  # the original is untouched


def test_lora_specs_and_tags():
    assert parse_lora_spec("C:/loras/x.safetensors") == Lora("C:/loras/x.safetensors", 1.0)
    assert parse_lora_spec("C:/loras/x.safetensors:0.7") == Lora("C:/loras/x.safetensors", 0.7)
    assert parse_lora_spec("style:-1") == Lora("style", -1.0)
    prompt, loras = extract_lora_tags("a cat <lora:fluffy:0.6>, on a mat <lora:light>")
    assert prompt == "a cat, on a mat" and loras == [Lora("fluffy", 0.6), Lora("light", 1.0)]


def test_pose_canvas_size_is_checked():
    with pytest.raises(RecipeError) as err:
        Recipe(controls=[Control(kind="pose", signal={"people": [], "canvas_width": 0})]).validate()
    assert err.value.field == "controls[0].signal.canvas_width"
