"""Reference images from the command line: ``--reference IMG[:WEIGHT][:MODE][:START-END]``, the
plan that shows them, the PNG that records them and ``rerun`` reproducing it pixel for pixel."""

from __future__ import annotations

import numpy as np
import pytest
from brushwork.cli import build_parser, main
from brushwork.cli_inputs import UsageError, recipe_from_args
from brushwork.testing.tiny_ip_adapter import SD15_ADAPTER, ensure_tiny_ip_adapters
from PIL import Image

pytestmark = pytest.mark.xdist_group("references")


def parsed(*argv):
    return recipe_from_args(build_parser().parse_args(["generate", "a fox", "--out", "x.png", *argv]))


def test_reference_flag_reads_weight_mode_and_steps_from_the_right():
    r = parsed("--reference", "ref.png:0.8:composition:0.2-0.9", "--reference", "b.png",
               "--reference", "C:\\pics\\c.png:style", "--reference-model", "ip-adapter-plus_sd15").references
    assert (r[0].image, r[0].weight, r[0].mode, r[0].start, r[0].end) == ("ref.png", 0.8, "composition", 0.2, 0.9)
    assert (r[1].image, r[1].weight, r[1].mode) == ("b.png", 0.6, "style")  # the Recipe's defaults
    assert (r[2].image, r[2].mode) == ("C:\\pics\\c.png", "style")
    assert {x.model for x in r} == {"ip-adapter-plus_sd15"}
    with pytest.raises(UsageError, match="--reference-model needs"):
        parsed("--reference-model", "ip-adapter_sd15")


@pytest.fixture
def models_env(tiny_models, monkeypatch):
    ensure_tiny_ip_adapters(tiny_models.root)
    monkeypatch.setenv("BRUSHWORK_MODEL_DIRS", str(tiny_models.root))
    return tiny_models


@pytest.fixture
def reference_png(tmp_path):
    path = tmp_path / "reference.png"
    rng = np.random.default_rng(5)
    Image.fromarray((rng.random((64, 64, 3)) * 255).astype(np.uint8)).save(path)
    return path


def test_dry_run_plan_shows_the_references(models_env, reference_png, tmp_path, capsys):
    assert main(["generate", "a fox", "--model", "tiny-sd15", "--steps", "4", "--size", "64x64", "--seed", "1",
                 "--reference", f"{reference_png}:0.5:composition:0-0.5", "--out", str(tmp_path / "x.png"),
                 "--dry-run"]) == 0
    out = capsys.readouterr().out
    assert "reference (composition): weight 0.5, steps 0-0.5 -> acts on steps [0, 1] of 4" in out
    assert not (tmp_path / "x.png").exists()


def test_bad_reference_is_one_line_before_loading(models_env, tmp_path, capsys):
    code = main(["generate", "a fox", "--model", "tiny-sd15", "--reference", str(tmp_path / "missing.png"),
                 "--out", str(tmp_path / "x.png")])
    err = capsys.readouterr().err.strip().splitlines()
    assert code == 2 and len(err) == 1 and err[0].startswith("brushwork: error: --reference")
    assert not (tmp_path / "x.png").exists()


@pytest.mark.slow
def test_generate_with_a_reference_then_rerun_reproduces_it(models_env, reference_png, tmp_path, capsys):
    from brushwork.metadata import read_metadata

    out = tmp_path / "fox.png"
    assert main(["generate", "a fox", "--model", "tiny-sd15", "--steps", "3", "--size", "64x64", "--seed", "9",
                 "--reference", f"{reference_png}:0.9:style", "--reference-model", SD15_ADAPTER,
                 "--out", str(out)]) == 0
    meta = read_metadata(out)
    (ref,) = meta.recipe.references
    assert ref.image.startswith("sha256:") and (ref.weight, ref.mode, ref.model) == (0.9, "style", SD15_ADAPTER)
    assert meta.hashes["references[0].model"] and meta.hashes["references[0].image"]
    assert meta.sources["references[0].model"].endswith("ip-adapter_tiny.safetensors")
    again = tmp_path / "again.png"
    assert main(["rerun", str(out), "--out", str(again)]) == 0
    with Image.open(out) as a, Image.open(again) as b:
        assert np.array_equal(np.asarray(a.convert("RGB")), np.asarray(b.convert("RGB")))
    plain = tmp_path / "plain.png"
    assert main(["generate", "a fox", "--model", "tiny-sd15", "--steps", "3", "--size", "64x64", "--seed", "9",
                 "--out", str(plain)]) == 0
    with Image.open(out) as a, Image.open(plain) as b:
        assert not np.array_equal(np.asarray(a.convert("RGB")), np.asarray(b.convert("RGB")))
