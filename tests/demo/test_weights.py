"""The shipped demo weights: sizes, formats, layout and the model card."""

from __future__ import annotations

import json

import brushwork.demo as demo
from brushwork.demo import manifest

MB = 1024 * 1024
PICKLE_SUFFIXES = {".bin", ".pt", ".pth", ".ckpt", ".pkl", ".pickle"}


def test_weights_fit_the_budget(demo_dir):
    files = [p for p in demo_dir.rglob("*") if p.is_file()]
    total = sum(p.stat().st_size for p in files)
    assert total <= 20 * MB, f"demo weights are {total / MB:.1f} MB (budget 20 MB)"
    for p in files:
        assert p.stat().st_size <= 4.5 * MB, f"{p} is {p.stat().st_size / MB:.1f} MB (at most 4.5 MB each)"
        assert p.suffix not in PICKLE_SUFFIXES, f"{p}: pickle weights must never ship"


def test_every_weight_file_is_fp16_safetensors(demo_dir):
    from safetensors import safe_open

    weights = list(demo_dir.rglob("*.safetensors"))
    assert len(weights) == 7  # vae, text encoder, unet; the same three for inpaint; the ControlNet
    for path in weights:
        with safe_open(str(path), "pt") as f:
            dtypes = {f.get_slice(k).get_dtype() for k in f.keys()}  # noqa: SIM118 (safe_open is no dict)
        assert dtypes == {"F16"}, f"{path}: {dtypes}"


def test_layout_is_diffusers_and_the_models_layer_reads_it(demo_dir):
    from brushwork.models.family import detect_folder

    base = detect_folder(demo_dir)
    assert (base.family, base.variant) == ("sd15", "base")
    inpaint = detect_folder(demo.inpaint_dir())
    assert inpaint.variant == "inpaint"
    assert json.loads((demo.inpaint_dir() / "unet" / "config.json").read_text())["in_channels"] == 9
    control = demo.controlnet_dir("depth")
    assert json.loads((control / "config.json").read_text())["_class_name"] == "ControlNetModel"
    assert demo.controlnet_dir("pose") is None  # the demo has a depth ControlNet only


def test_manifest_and_model_card_record_what_it_is(demo_dir):
    info = demo.info()
    assert info["native_size"] == demo.native_size() == 64
    assert info["licence"] == "Apache-2.0"
    assert set(info["training"]["losses"]) == {"vae", "unet", "controlnet", "inpaint", "decoder"}
    assert len(info["preview"]["factors"]) == 4 and all(len(row) == 3 for row in info["preview"]["factors"])
    card = (demo_dir / "README.md").read_text()
    for needle in ("toy", "64x64", "Apache-2.0", "python -m brushwork.demo.train"):
        assert needle in card, needle


def test_is_demo_knows_its_folders(demo_dir, tmp_path):
    assert demo.is_demo(demo_dir) and demo.is_demo(demo.inpaint_dir())
    assert demo.is_demo(demo.controlnet_dir("depth"))
    assert not demo.is_demo(tmp_path) and not demo.is_demo(None)


def test_manifest_read_tolerates_missing_or_broken_files(tmp_path):
    assert manifest.read(tmp_path) is None
    (tmp_path / manifest.MANIFEST_NAME).write_text("{not json")
    assert manifest.read(tmp_path) is None
    (tmp_path / manifest.MANIFEST_NAME).write_text("[1, 2]")
    assert manifest.read(tmp_path) is None


def test_the_cli_says_when_it_falls_back_to_the_demo_model(capsys, tmp_path, monkeypatch):
    """No model configured: the CLI names the demo model on stderr before anything loads."""
    from brushwork import Recipe
    from brushwork.cli_inputs import plan_run

    monkeypatch.delenv("BRUSHWORK_DEFAULT_MODEL", raising=False)
    monkeypatch.setenv("BRUSHWORK_MODEL_DIRS", str(tmp_path))
    assert any("bundled demo model" in note for note in plan_run(Recipe(prompt="red bricks"), set()).notes)
    # asked for by name: no notice
    assert not any("demo model" in note for note in plan_run(Recipe(prompt="red bricks", model="demo"), set()).notes)
