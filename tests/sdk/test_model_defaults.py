"""models/defaults.py: the settings a model brings when the user leaves them out (issue 19)."""

from __future__ import annotations

import json

import pytest
from brushwork.models import defaults as d
from brushwork.models import registry


@pytest.mark.parametrize("family, variant, name, expect", [
    ("sd15", "base", "", (512, 512, 25, 7.0, "DPM++ 2M Karras")),
    ("sdxl", "base", "", (1024, 1024, 30, 6.0, "DPM++ 2M Karras")),
    ("sdxl", "turbo", "", (512, 512, 1, 0.0, "Euler a")),
    ("sd15", "lcm", "", (512, 512, 4, 1.5, "LCM")),
    ("sdxl", "base", "juggernaut-lightning-4step.safetensors", (1024, 1024, 4, 1.0, "Euler")),
    ("sd15", "base", "Hyper-SD15-8steps", (512, 512, 4, 1.0, "Euler")),
])
def test_family_and_variant_rules(family, variant, name, expect):
    got = d.defaults_for(family, variant, name=name)
    assert (got.width, got.height, got.steps, got.cfg, got.sampler) == expect


def test_known_hub_models_use_their_cards():
    for model in registry.KNOWN_MODELS:
        if model.lora:
            continue
        got = d.defaults_for(model.family, model.variant, hub_id=model.hub_id)
        assert (got.steps, got.cfg, got.sampler, got.width) == (model.steps, model.cfg, model.sampler, model.size)


def test_the_model_s_own_metadata_sets_the_size():
    got = d.defaults_for("sdxl", metadata={"modelspec.resolution": "768x1344"})
    assert (got.width, got.height) == (768, 1344) and "size from the model's files" in got.why
    assert d.defaults_for("sd15", metadata={"modelspec.resolution": "huge"}).width == 512  # ignored when odd


def test_a_manifest_wins_over_the_family_rule():
    got = d.defaults_for("sd15", manifest={"name": "brushwork-demo", "native_size": 64,
                                           "recommended": {"steps": 20, "cfg": 5.0, "sampler": "Euler a"}})
    assert (got.width, got.steps, got.cfg, got.sampler) == (64, 20, 5.0, "Euler a")


def test_a_diffusers_folder_s_native_size(tmp_path):
    (tmp_path / "unet").mkdir()
    (tmp_path / "vae").mkdir()
    (tmp_path / "unet" / "config.json").write_text(json.dumps({"sample_size": 96}))
    (tmp_path / "vae" / "config.json").write_text(json.dumps({"block_out_channels": [128, 256, 512, 512]}))
    assert d._native_side_of_folder(tmp_path) == 768


def test_the_bundled_demo_ref():
    from brushwork.models import settings, sources

    ref = sources.resolve("brushwork-demo", "pipeline", settings.Settings.load())
    got = d.defaults_for_ref(ref)
    assert (got.width, got.height, got.steps, got.cfg, got.sampler) == (64, 64, 20, 5.0, "Euler a")


def test_the_defaults_fill_only_what_the_recipe_leaves_unset():
    from brushwork.recipe import Recipe

    base = d.defaults_for("sd15")
    out = Recipe(prompt="x", steps=9, width=768, height=512).with_defaults(base.as_fields())
    assert (out.steps, out.width, out.height, out.cfg, out.sampler) == (9, 768, 512, 7.0, "DPM++ 2M Karras")


def test_preset_sizes_keep_their_shape_at_the_model_s_area():
    assert d.scaled_size(512, 768, d.defaults_for("sd15")) == (512, 768)
    assert d.scaled_size(512, 768, d.defaults_for("sdxl")) == (1024, 1536)
    demo = d.defaults_for("sd15", manifest={"native_size": 64, "recommended": {}})
    assert d.scaled_size(512, 512, demo) == (64, 64)


def test_models_info_shows_the_defaults_that_will_apply(capsys):
    from brushwork.cli import main

    assert main(["models", "info", "brushwork-demo"]) == 0
    assert "defaults:  64x64, 20 steps, CFG 5, Euler a" in capsys.readouterr().out


def test_generate_help_shows_the_defaults_table(capsys):
    from brushwork.cli import main

    with pytest.raises(SystemExit):
        main(["generate", "--help"])
    out = capsys.readouterr().out
    assert "SDXL Turbo       512x512, 1 step, CFG 0, Euler a" in out
    assert "the demo         64x64, 20 steps, CFG 5, Euler a" in out
