"""Presets: the bundled ones load and mean what they say; user presets override; bad files are
PresetErrors naming the file and the key."""

import pytest
from brushwork import paths
from brushwork.errors import PresetError, RecipeError
from brushwork.presets import list_presets, load_preset, preset_problems, recipe_from_preset
from brushwork.recipe import Control

REQUIRED = {"texture-seamless", "sketch-to-image", "depth-to-texture", "pose-character", "live-fast", "inpaint-fix"}


def user_preset(name: str, text: str):
    folder = paths.config_dir() / "presets"
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / f"{name}.toml"
    path.write_text(text)
    return path


def test_bundled_presets_all_load_with_descriptions():
    presets = {p.name: p for p in list_presets()}
    assert set(presets) >= REQUIRED
    assert all(p.description for p in presets.values())
    assert preset_problems() == []


def test_bundled_presets_mean_what_they_say():
    assert recipe_from_preset("texture-seamless", prompt="mossy stones").tiling == "xy"
    live = recipe_from_preset("live-fast")
    assert (live.sampler, live.steps) == ("LCM", 4) and live.cfg < 2
    fix = recipe_from_preset("inpaint-fix", init_image="a.png", mask="m.png")
    assert fix.mask_grow > 0 and fix.mask_feather > 0 and fix.task == "inpaint"
    pose = recipe_from_preset("pose-character", controls=[{"kind": "pose", "image": "p.png"}])
    assert pose.height > pose.width and pose.controls[0].end == 0.9
    assert pose.preset == "pose-character"


def test_prompt_suffix_and_overrides():
    r = recipe_from_preset("texture-seamless", prompt="mossy stones", steps=12, negative_prompt="")
    assert r.prompt.startswith("mossy stones, seamless tileable texture")
    assert r.steps == 12 and r.negative_prompt == ""


def test_control_defaults_fill_only_what_is_not_given():
    r = recipe_from_preset("sketch-to-image", controls=[
        {"kind": "scribble", "image": "s.png"},
        {"kind": "scribble", "image": "s.png", "strength": 0.3},
        Control(kind="scribble", image="s.png"),  # an object is taken as given
    ])
    assert [c.strength for c in r.controls] == [0.9, 0.3, 1.0]
    assert r.controls[0].end == 0.85


def test_override_errors_are_recipe_errors():
    with pytest.raises(RecipeError, match="steps"):
        recipe_from_preset("live-fast", steps=0)


def test_user_preset_overrides_bundled():
    user_preset("live-fast", 'description = "mine"\nsteps = 2\n')
    assert load_preset("live-fast").description == "mine"
    assert recipe_from_preset("live-fast").steps == 2


def test_unknown_preset_lists_known():
    with pytest.raises(PresetError, match="unknown preset 'nope' .*live-fast"):
        load_preset("nope")
    with pytest.raises(PresetError, match="preset name"):
        load_preset("../../etc/passwd")


@pytest.mark.parametrize("text, match", [
    ('description = "x"\nsteppes = 3\n', r"bad\.toml: unknown key 'steppes'"),
    ('description = "x"\nsteps = 0\n', r"bad\.toml: steps: must be between 1 and 200"),
    ('description = "x"\nsampler = "Fast"\n', r"bad\.toml: sampler: unknown sampler 'Fast'"),
    ('description = "x"\nwidth = 100\n', r"bad\.toml: width: must be a multiple of 8"),
    ('steps = 3\n', r"bad\.toml: needs a 'description'"),
    ('description = "x"\n[control.depht]\nstrength = 1\n', r"bad\.toml: unknown key 'control.depht'"),
    ('description = "x"\n[control.depth]\nstrenght = 1\n', r"bad\.toml: unknown key 'control.depth.strenght'"),
    ('description = "x"\n[control.depth]\nstrength = 9\n', r"bad\.toml: control.depth.strength: must be between"),
    ('description = "x"\n[[controls]]\nkind = "depth"\n', r"bad\.toml: unknown key 'controls' \(ControlNet defaults"),
    ('description = "x"\nsteps = [\n', r"bad\.toml: not valid TOML"),
    ('description = "x"\nschema = 1\n', r"bad\.toml: unknown key 'schema'"),
])
def test_bad_preset_files_name_file_and_key(text, match):
    user_preset("bad", text)
    with pytest.raises(PresetError, match=match):
        load_preset("bad")
    assert any("bad.toml" in line for line in preset_problems())
    assert "bad" not in {p.name for p in list_presets()}  # listing still works


def test_preset_by_path(tmp_path):
    path = tmp_path / "mine.toml"
    path.write_text('description = "file preset"\ncfg = 3.5\n')
    assert recipe_from_preset(str(path)).cfg == 3.5
