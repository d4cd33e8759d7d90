"""The `brushwork` command line: bad input is one line and exit 2 with no output file; a good
run writes PNGs with metadata that `info` shows and `rerun` reproduces pixel for pixel."""

import os
import pickle
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from brushwork.cli import main
from PIL import Image

REPO = Path(__file__).resolve().parents[2]
BRUSHWORK = REPO / ".venv" / "bin" / "brushwork"


def run_cli(*args, env_extra=None, timeout=300):
    exe = [str(BRUSHWORK)] if BRUSHWORK.exists() else [sys.executable, "-m", "brushwork"]
    env = {**os.environ, "HF_HUB_OFFLINE": "1", **(env_extra or {})}
    return subprocess.run([*exe, *map(str, args)], capture_output=True, text=True, env=env, timeout=timeout)


def assert_one_line_error(proc, code=2, match=""):
    assert proc.returncode == code, (proc.returncode, proc.stderr)
    lines = [line for line in proc.stderr.replace("\r", "\n").splitlines() if line.strip() and not line.startswith("[")]
    assert len(lines) == 1 and lines[0].startswith("brushwork: error: "), proc.stderr
    assert "Traceback" not in proc.stderr
    assert match in lines[0], lines[0]
    return lines[0]


def save(img, path):
    img.save(path)
    return path


@pytest.fixture
def pictures(tmp_path):
    rng = np.random.default_rng(0)
    photo = save(Image.fromarray(rng.integers(0, 255, (64, 64, 3), dtype=np.uint8)), tmp_path / "photo.png")
    mask = Image.new("L", (64, 64), 0)
    mask.paste(255, (16, 16, 48, 48))
    return {
        "photo": photo,
        "mask": save(mask, tmp_path / "mask.png"),
        "small_mask": save(Image.new("L", (32, 32), 255), tmp_path / "small_mask.png"),
        "corrupt": _write(tmp_path / "corrupt.png", b"\x89PNG\r\n\x1a\n" + b"\0" * 40),
        "truncated": _write(tmp_path / "trunc.png", photo.read_bytes()[:300]),
        "pickle": _write(tmp_path / "evil.ckpt", pickle.dumps({"state_dict": {}})),
    }


def _write(path, data):
    path.write_bytes(data)
    return path


# ---- fast: no model is loaded ----------------------------------------------------------------

def test_help_is_fast_and_imports_no_torch():
    code = ("import sys; from brushwork.cli import build_parser; build_parser(); "
            "print(sorted({m.split('.')[0] for m in sys.modules} & {'torch', 'diffusers', 'transformers'}))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert out.stdout.strip() == "[]", out.stderr
    proc = subprocess.run([sys.executable, "-m", "brushwork", "--help"], capture_output=True, text=True, timeout=60)
    assert proc.returncode == 0 and "generate" in proc.stdout and "rerun" in proc.stdout


BAD_ARGS = [
    (["--steps", "0"], "steps: must be between 1 and 200"),
    (["--size", "13x7"], "width: must be between 64 and 4096"),
    (["--size", "500x512"], "width: must be a multiple of 8"),
    (["--size", "big"], "--size: expected WxH"),
    (["--steps", "many"], "argument --steps: invalid int value"),
    (["--cfg", "nan"], "cfg: must be finite"),
    (["--batch", "0"], "batch: must be between 1 and 16"),
    (["--seed", "-1"], "seed: must be between 0"),
    (["--sampler", "Fastest"], "sampler: unknown sampler 'Fastest'"),
    (["--strength", "0.5"], "--strength needs --init"),
    (["--control", "bogus=x.png"], "--control: unknown control kind 'bogus'"),
    (["--control", "depth"], "--control: expected KIND=VALUE"),
    (["--controlnet", "depth=some/net"], "there is no --control depth=IMG"),
    (["--lora", "detail:9"], "weight: must be between -4 and 4"),
    (["--tile", "z"], "argument --tile: invalid choice"),
    (["--preset", "nope"], "unknown preset 'nope'"),
    (["--mask", "{mask}"], "mask: inpainting needs init_image"),
    (["--init", "{missing}"], "no such file"),
    (["--init", "{corrupt}"], "--init"),
    (["--init", "{truncated}"], "corrupt or truncated"),
    (["--init", "{pickle}"], "not an image"),
    (["--init", "{photo}", "--mask", "{small_mask}"], "is 32x32 but the image it masks is 64x64"),
    (["--control", "depth={corrupt}"], "--control depth"),
]


@pytest.mark.parametrize("extra, match", BAD_ARGS, ids=[" ".join(a) for a, _ in BAD_ARGS])
def test_bad_input_is_one_line_exit_2_and_no_output(tmp_path, pictures, extra, match):
    files = {**pictures, "missing": tmp_path / "missing.png"}
    extra = [a.format(**files) for a in extra]
    out = tmp_path / "out.png"
    proc = run_cli("generate", "a fox", "--model", "tiny-sd15", "--out", out, *extra)
    assert_one_line_error(proc, 2, match)
    assert not out.exists() and not list(tmp_path.glob("out*"))


def test_out_must_be_png(tmp_path):
    proc = run_cli("generate", "a fox", "--out", tmp_path / "x.jpg")
    assert_one_line_error(proc, 2, "outputs are PNG files")


def test_presets_and_estimators_commands():
    proc = run_cli("presets")
    assert proc.returncode == 0
    for name in ("texture-seamless", "sketch-to-image", "depth-to-texture", "pose-character", "live-fast",
                 "inpaint-fix"):
        assert name in proc.stdout
    proc = run_cli("estimators")
    assert proc.returncode == 0 and "non-commercial" in proc.stdout and "depth-anything" in proc.stdout


def test_info_and_rerun_errors(tmp_path, pictures):
    jpg = save(Image.new("RGB", (8, 8)), tmp_path / "a.jpg")
    assert_one_line_error(run_cli("info", jpg), 2, "not a PNG")
    assert_one_line_error(run_cli("info", pictures["photo"]), 2, "has no generation metadata")
    assert_one_line_error(run_cli("info", tmp_path / "nope.png"), 2, "no such file")
    assert_one_line_error(run_cli("rerun", pictures["photo"], "--out", tmp_path / "r.png"), 2, "no generation metadata")
    assert not (tmp_path / "r.png").exists()


def test_unknown_command_is_one_line():
    assert_one_line_error(run_cli("paint"), 2, "invalid choice")


# ---- with the tiny models ------------------------------------------------------------------------

@pytest.fixture
def models_env(tiny_models, monkeypatch):
    monkeypatch.setenv("BRUSHWORK_MODEL_DIRS", str(tiny_models.root))
    return tiny_models


@pytest.mark.slow
def test_generate_then_info_through_the_real_command(models_env, tmp_path):
    out = tmp_path / "fox.png"
    proc = run_cli("generate", "a red fox", "--model", "tiny-sd15", "--steps", "2", "--size", "64x64",
                   "--seed", "7", "--negative", "blurry", "--out", out)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.strip() == str(out) and out.is_file()
    assert "step 2/2" in proc.stderr and "Traceback" not in proc.stderr
    info = run_cli("info", out)
    assert info.returncode == 0
    # no --sampler/--cfg given: the SD 1.5 model's own defaults (models/defaults.py) apply
    assert ("a red fox\nNegative prompt: blurry\nSteps: 2, Sampler: DPM++ 2M Karras, CFG scale: 7, Seed: 7, "
            "Size: 64x64") in info.stdout
    assert '"seed": 7' in info.stdout


@pytest.mark.parametrize("model, match", [("no-such-model", "no-such-model"), ("{pickle}", "")])
def test_missing_model_and_pickle_are_refused(models_env, tmp_path, pictures, model, match):
    out = tmp_path / "out.png"
    proc = run_cli("generate", "a fox", "--model", model.format(**pictures), "--steps", "1", "--size", "64x64",
                   "--out", out)
    line = assert_one_line_error(proc, 2, match)
    if model == "{pickle}":
        assert "pickle" in line.lower() or "ckpt" in line.lower()
    assert not out.exists()


def _pixels(path):
    with Image.open(path) as img:
        return np.asarray(img.convert("RGB")).copy()


@pytest.mark.slow
def test_batch_then_rerun_reproduces_pixel_for_pixel(models_env, tmp_path, capsys):
    out = tmp_path / "b.png"
    assert main(["generate", "a lighthouse", "--model", "tiny-sd15", "--steps", "2", "--size", "64x64",
                 "--seed", "100", "--batch", "2", "--out", str(out)]) == 0
    first, second = tmp_path / "b-1.png", tmp_path / "b-2.png"
    assert first.is_file() and second.is_file() and not out.exists()
    assert not (_pixels(first) == _pixels(second)).all()  # seeds 100 and 101
    again = tmp_path / "again.png"
    assert main(["rerun", str(second), "--out", str(again)]) == 0
    assert (_pixels(again) == _pixels(second)).all()
    from brushwork.metadata import read_metadata

    assert read_metadata(again).recipe.seed == 101


@pytest.mark.slow
def test_rerun_finds_inputs_by_recorded_source_and_checks_their_hash(models_env, tmp_path, pictures, capsys):
    init = tmp_path / "init.png"
    init.write_bytes(pictures["photo"].read_bytes())
    out = tmp_path / "inpaint.png"
    assert main(["generate", "a fox", "--model", "tiny-sd15", "--steps", "2", "--size", "64x64", "--seed", "3",
                 "--init", str(init), "--mask", str(pictures["mask"]), "--strength", "0.8",
                 "--out", str(out)]) == 0
    original = _pixels(init)
    result = _pixels(out)
    outside = np.asarray(Image.open(pictures["mask"])) == 0
    assert (result[outside] == original[outside]).all()  # inpainting kept every outside pixel

    import shutil

    from brushwork import paths

    shutil.rmtree(paths.state_dir() / "assets", ignore_errors=True)  # as if on another machine
    again = tmp_path / "again.png"
    assert main(["rerun", str(out), "--out", str(again)]) == 0
    assert (_pixels(again) == result).all()

    shutil.rmtree(paths.state_dir() / "assets", ignore_errors=True)
    Image.new("RGB", (64, 64), (1, 2, 3)).save(init)  # the source changed since
    capsys.readouterr()
    assert main(["rerun", str(out), "--out", str(tmp_path / "never.png")]) == 2
    err = capsys.readouterr().err
    assert "has changed since" in err and not (tmp_path / "never.png").exists()


@pytest.mark.slow
def test_preset_and_control_through_the_cli(models_env, tmp_path, capsys):
    sketch = Image.new("RGB", (64, 64), "white")
    from PIL import ImageDraw

    ImageDraw.Draw(sketch).ellipse((10, 10, 54, 54), outline="black", width=3)
    sketch.save(tmp_path / "sketch.png")
    out = tmp_path / "s.png"
    assert main(["generate", "a moon", "--preset", "sketch-to-image", "--model", "tiny-sd15", "--steps", "2",
                 "--size", "64x64", "--control", f"scribble={tmp_path / 'sketch.png'}",
                 "--controlnet", f"scribble={models_env.controlnets['scribble']}", "--out", str(out)]) == 0
    from brushwork.metadata import read_metadata

    recipe = read_metadata(out).recipe
    assert recipe.preset == "sketch-to-image"
    assert recipe.controls[0].kind == "scribble" and recipe.controls[0].strength == 0.9
    assert recipe.controls[0].image.startswith("sha256:")
    assert recipe.controls[0].model == str(models_env.controlnets["scribble"])


# ---- how a command line becomes a Recipe (in-process, no model) ------------------------------------

def recipe_for(*args):
    from brushwork.cli import build_parser, recipe_from_args

    return recipe_from_args(build_parser().parse_args(["generate", "a fox", "--out", "o.png", *args]))


def test_control_specs_strengths_and_windows_paths():
    r = recipe_for("--control", r"depth=C:\art\d.png:0.5", "--control", "canny=C:/art/e.png",
                   "--controlnet", "depth=my/depth-net", "--preprocess", "canny=canny")
    assert (r.controls[0].image, r.controls[0].strength, r.controls[0].model) == (r"C:\art\d.png", 0.5, "my/depth-net")
    assert (r.controls[1].image, r.controls[1].strength, r.controls[1].preprocess) == ("C:/art/e.png", 1.0, "canny")


def test_preset_defaults_and_explicit_values():
    r = recipe_for("--preset", "sketch-to-image", "--control", "scribble=a.png", "--control", "scribble=b.png:0.4",
                   "--steps", "9")
    assert [c.strength for c in r.controls] == [0.9, 0.4] and r.steps == 9 and r.preset == "sketch-to-image"


def test_relative_model_paths_are_recorded_absolute(tmp_path, monkeypatch):
    (tmp_path / "mymodel").mkdir()
    monkeypatch.chdir(tmp_path)
    r = recipe_for("--model", "mymodel", "--lora", "style:0.5")
    assert r.model == str(tmp_path / "mymodel") and r.loras[0].name == "style"


def test_pose_json_and_depth_npy_become_signals(tmp_path):
    import json

    pose = tmp_path / "pose.json"
    pose.write_text(json.dumps({"people": [{"pose_keypoints_2d": [10, 10, 1] * 18}], "canvas_width": 64,
                                "canvas_height": 64}))
    np.save(tmp_path / "z.npy", np.ones((24, 32), dtype=np.float32))
    r = recipe_for("--control", f"pose={pose}", "--control", f"depth={tmp_path / 'z.npy'}")
    assert r.controls[0].image is None and r.controls[0].signal["canvas_width"] == 64
    assert r.controls[1].signal == {"data": str(tmp_path / "z.npy"), "format": "npy", "width": 32, "height": 24}


def test_bad_signal_files_are_input_errors(tmp_path):
    from brushwork.errors import InputImageError

    (tmp_path / "bad.json").write_text("{nope")
    with pytest.raises(InputImageError, match="not valid OpenPose JSON"):
        recipe_for("--control", f"pose={tmp_path / 'bad.json'}")
    np.save(tmp_path / "cube.npy", np.zeros((2, 2, 2)))
    with pytest.raises(InputImageError, match="2-D array"):
        recipe_for("--control", f"depth={tmp_path / 'cube.npy'}")
    with pytest.raises(InputImageError, match="no such file"):
        recipe_for("--control", f"depth={tmp_path / 'none.npy'}")


@pytest.mark.slow
def test_two_controlnets_from_raw_signals(models_env, tmp_path, capsys):
    import json

    flat = [0.0] * 54
    flat[3:6] = [32, 20, 1]
    flat[6:9] = [20, 24, 1]
    (tmp_path / "pose.json").write_text(json.dumps({"people": [{"pose_keypoints_2d": flat}]}))
    depth = np.tile(np.linspace(1, 5, 64, dtype=np.float32), (64, 1))
    np.save(tmp_path / "z.npy", depth)
    out = tmp_path / "multi.png"
    assert main(["generate", "a dancer", "--model", "tiny-sd15", "--steps", "2", "--size", "64x64", "--seed", "1",
                 "--control", f"pose={tmp_path / 'pose.json'}:0.8", "--control", f"depth={tmp_path / 'z.npy'}",
                 "--controlnet", f"pose={models_env.controlnets['pose']}",
                 "--controlnet", f"depth={models_env.controlnets['depth']}", "--out", str(out)]) == 0
    from brushwork.metadata import read_metadata

    meta = read_metadata(out)
    assert [c.kind for c in meta.recipe.controls] == ["pose", "depth"]
    assert meta.recipe.controls[1].signal["data"].startswith("sha256:")
    assert meta.recipe.controls[0].strength == 0.8


def test_bare_inpaint_control_uses_init_and_mask():
    r = recipe_for("--init", "a.png", "--mask", "m.png", "--control", "inpaint")
    assert r.controls[0].kind == "inpaint" and r.controls[0].image is None


@pytest.mark.slow
def test_runtime_failure_is_one_line_exit_1_and_no_file(models_env, tmp_path, capsys, monkeypatch):
    from brushwork.engine.studio import Studio
    from brushwork.errors import OutOfMemoryError

    def out_of_memory(self, recipe, on_progress=None, cancel=None):
        raise OutOfMemoryError("out of GPU memory while generating 64x64 (needed 2.0 GiB)", 2 << 30)

    monkeypatch.setattr(Studio, "generate", out_of_memory)  # a real OOM cannot be forced on a CPU
    out = tmp_path / "oom.png"
    capsys.readouterr()  # importing the engine above may have logged library chatter
    code = main(["generate", "a fox", "--model", "tiny-sd15", "--size", "64x64", "--out", str(out)])
    err = capsys.readouterr().err.strip().splitlines()
    assert code == 1 and err == ["brushwork: error: out of GPU memory while generating 64x64 (needed 2.0 GiB)"]
    assert not out.exists()
