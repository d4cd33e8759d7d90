"""Everything checkable is checked before a model loads (issue 19): the output path, every model
a recipe names, a preset's needs; and the model's defaults fill what the user left out.

These run the real command line in-process and never load a model: each case fails (or plans)
in well under a second. The cases that generate use the demo model at its 64x64 size.
"""

from __future__ import annotations

import os
from pathlib import Path

import pytest
from brushwork.cli import build_parser, main
from brushwork.cli_inputs import explicit_fields, output_targets, plan_run, recipe_from_args
from brushwork.presets import load_preset


def plan_for(*args: str):
    parsed = build_parser().parse_args(["generate", *args])
    recipe = recipe_from_args(parsed)
    return plan_run(recipe, explicit_fields(parsed), load_preset(parsed.preset) if parsed.preset else None)


def one_error(capsys) -> str:
    lines = [line for line in capsys.readouterr().err.splitlines() if line.startswith("brushwork: error: ")]
    assert len(lines) == 1, lines
    return lines[0]


@pytest.fixture(autouse=True)
def _no_model_loads(monkeypatch):
    """Fail loudly if any case here reaches the engine."""
    import brushwork

    def boom(*args, **kwargs):
        raise AssertionError("a model was about to load")

    monkeypatch.setattr(brushwork, "Studio", boom, raising=False)


# ---- the output path -----------------------------------------------------------------------------


def test_an_out_whose_parent_is_a_file_is_refused_first(tmp_path, capsys):
    (tmp_path / "file").write_text("x")
    assert main(["generate", "red bricks", "--out", str(tmp_path / "file" / "sub" / "a.png")]) == 2
    assert "is a file" in one_error(capsys)


def test_an_out_that_is_a_folder_is_refused(tmp_path, capsys):
    assert main(["generate", "red bricks", "--out", str(tmp_path)]) == 2
    assert "is a folder" in one_error(capsys)


@pytest.mark.skipif(not Path("/proc").is_dir(), reason="needs a folder nobody can write (Linux /proc)")
def test_an_unwritable_place_is_refused_even_for_root(capsys):
    assert main(["generate", "red bricks", "--out", "/proc/brushwork-out.png"]) == 2
    assert "cannot write in /proc" in one_error(capsys)


def test_an_existing_file_is_never_overwritten_silently(tmp_path, capsys):
    out = tmp_path / "a.png"
    out.write_bytes(b"precious")
    assert main(["generate", "red bricks", "--out", str(out)]) == 2
    assert "already exists; pass --overwrite" in one_error(capsys)
    assert out.read_bytes() == b"precious"


def test_every_file_of_a_batch_is_checked(tmp_path, capsys):
    (tmp_path / "b-2.png").write_bytes(b"x")
    assert main(["generate", "red bricks", "--batch", "3", "--out", str(tmp_path / "b.png")]) == 2
    assert "b-2.png already exists" in one_error(capsys)


def test_output_targets_match_what_result_save_writes(tmp_path):
    from brushwork.engine.result import Result
    from PIL import Image

    for count in (1, 3):
        for name in ("x.png", "x", "job.2026-11-22"):
            result = Result(images=[Image.new("RGB", (8, 8))] * count, seeds=list(range(count)), recipe=None)
            assert output_targets(str(tmp_path / name), count) == result.paths_for(tmp_path / name)


def test_rerun_refuses_an_existing_out_too(tmp_path, capsys):
    out = tmp_path / "again.png"
    out.write_bytes(b"x")
    assert main(["rerun", str(tmp_path / "whatever.png"), "--out", str(out)]) == 2
    assert "already exists" in one_error(capsys)


# ---- models named by the recipe ------------------------------------------------------------------


@pytest.mark.parametrize("option, value, match", [
    ("--lora", "no-such-lora:0.8", "no-such-lora"),
    ("--lora", "/nowhere/style.safetensors", "no such file"),
    ("--vae", "/nowhere/vae", "no such file"),
    ("--controlnet", "depth=/nowhere/cn", "no such file"),
])
def test_a_missing_component_is_refused_before_loading(tmp_path, capsys, monkeypatch, option, value, match):
    monkeypatch.setenv("BRUSHWORK_MODEL_DIRS", str(tmp_path / "models"))
    (tmp_path / "models").mkdir()
    extra = [option, value]
    if option == "--controlnet":
        depth = tmp_path / "d.png"
        from PIL import Image

        Image.new("RGB", (64, 64)).save(depth)
        extra = ["--control", f"depth={depth}", *extra]
    assert main(["generate", "red bricks", *extra, "--out", str(tmp_path / "o.png")]) == 2
    assert match in one_error(capsys)
    assert not (tmp_path / "o.png").exists()


def test_a_control_the_demo_has_no_controlnet_for_is_refused_clearly(tmp_path, capsys):
    from PIL import Image

    Image.new("RGB", (64, 64), "white").save(tmp_path / "s.png")
    assert main(["generate", "a moon", "--control", f"scribble={tmp_path / 's.png'}",
                 "--out", str(tmp_path / "o.png")]) == 2
    assert "the demo model has no scribble ControlNet (it has: depth)" in one_error(capsys)


# ---- defaults from the model, explicit values win ----------------------------------------------------


def test_the_demo_gets_its_own_size_steps_cfg_and_sampler():
    plan = plan_for("red brick wall", "--out", "o.png")
    r = plan.recipe
    assert (r.width, r.height, r.steps, r.cfg, r.sampler) == (64, 64, 20, 5.0, "Euler a")
    assert any("demo model" in note for note in plan.notes)


def test_explicit_values_always_win():
    r = plan_for("red bricks", "--out", "o.png", "--size", "128x64", "--steps", "7", "--cfg", "3",
                 "--sampler", "DDIM").recipe
    assert (r.width, r.height, r.steps, r.cfg, r.sampler) == (128, 64, 7, 3.0, "DDIM")


def test_a_model_folder_brings_its_native_size(tiny_models, monkeypatch):
    monkeypatch.setenv("BRUSHWORK_MODEL_DIRS", str(tiny_models.root))
    plan = plan_for("a fox", "--model", "tiny-sd15", "--out", "o.png")
    assert plan.defaults.family == "sd15"
    assert (plan.recipe.steps, plan.recipe.cfg, plan.recipe.sampler) == (25, 7.0, "DPM++ 2M Karras")
    assert plan.recipe.width == plan.defaults.width  # from the UNet's sample_size x the VAE's factor


# ---- presets on the demo: a sensible run or a clear refusal, never silent ---------------------------


def test_texture_seamless_on_the_demo_keeps_its_intent_but_the_demo_s_sampling():
    plan = plan_for("red bricks", "--preset", "texture-seamless", "--out", "o.png")
    r = plan.recipe
    assert r.tiling == "xy" and r.prompt.startswith("red bricks, seamless tileable texture")
    assert (r.width, r.height, r.steps, r.sampler) == (64, 64, 20, "Euler a")
    assert any("texture-seamless" in note for note in plan.notes)


def test_live_fast_on_a_full_step_model_says_so_and_uses_the_model_s_settings():
    plan = plan_for("red bricks", "--preset", "live-fast", "--out", "o.png")
    assert plan.recipe.sampler != "LCM" and plan.recipe.steps == 20
    assert any("few-step model" in note for note in plan.notes)


def test_live_fast_with_an_explicit_sampler_keeps_it():
    plan = plan_for("red bricks", "--preset", "live-fast", "--sampler", "LCM", "--steps", "4", "--out", "o.png")
    assert (plan.recipe.sampler, plan.recipe.steps) == ("LCM", 4)


def test_sketch_to_image_without_a_sketch_is_refused(tmp_path, capsys):
    assert main(["generate", "a moon", "--preset", "sketch-to-image", "--out", str(tmp_path / "o.png")]) == 2
    assert "needs its control picture" in one_error(capsys)


def test_a_preset_for_another_family_is_refused(tmp_path, capsys, monkeypatch):
    monkeypatch.setenv("BRUSHWORK_CONFIG_DIR", str(tmp_path))
    monkeypatch.setenv("XDG_CONFIG_HOME", str(tmp_path))
    from brushwork.presets import user_dir

    folder = user_dir()
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "xl-only.toml").write_text('description = "x"\n[needs]\nfamily = ["sdxl"]\n')
    assert main(["generate", "a moon", "--preset", "xl-only", "--out", str(tmp_path / "o.png")]) == 2
    assert "needs a sdxl model" in one_error(capsys)


def test_preset_needs_are_validated(tmp_path):
    from brushwork.errors import PresetError
    from brushwork.presets import parse_preset

    for needs, match in (({"family": ["sd9"]}, "unknown family"), ({"control": ["smell"]}, "unknown kind"),
                         ({"few_step": "yes"}, "true or false"), ({"colour": []}, "unknown key")):
        with pytest.raises(PresetError, match=match):
            parse_preset({"description": "x", "needs": needs}, name="x", path=tmp_path / "x.toml")


def test_recorded_model_missing_makes_rerun_say_so(tmp_path, capsys):
    """An image from before the model was recorded: rerun says so instead of guessing."""
    from brushwork.metadata import save_png
    from brushwork.recipe import Recipe
    from PIL import Image

    old = tmp_path / "old.png"
    save_png(Image.new("RGB", (64, 64)), old, Recipe(prompt="red bricks", seed=1, width=64, height=64))
    assert main(["rerun", str(old), "--out", str(tmp_path / "again.png")]) == 2
    assert "does not record which model made it" in one_error(capsys)
    assert not (tmp_path / "again.png").exists()
    assert os.listdir(tmp_path) == ["old.png"]
