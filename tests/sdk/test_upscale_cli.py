"""``brushwork upscale``: the real command line in-process. Bad input is one line and exit 2
before any model loads (the Studio is replaced by a tripwire there); a good run writes the
enlarged PNG whose metadata carries the upscale step (and A1111's hires keys)."""

from __future__ import annotations

import numpy as np
import pytest
from brushwork.cli import main
from brushwork.metadata import read_metadata
from brushwork.testing.tiny_upscaler import build_tiny_esrgan
from PIL import Image


@pytest.fixture
def files(tmp_path):
    rng = np.random.default_rng(0)
    Image.fromarray((rng.random((100, 130, 3)) * 255).astype(np.uint8)).save(tmp_path / "in.png")
    build_tiny_esrgan(tmp_path / "x2.safetensors", scale=2)
    build_tiny_esrgan(tmp_path / "x2.pth", scale=2)
    (tmp_path / "taken.png").write_bytes(b"keep me")
    return tmp_path


def one_error(capsys) -> str:
    err = capsys.readouterr().err
    lines = [line for line in err.splitlines() if line.startswith("brushwork: error: ")]
    assert len(lines) == 1 and "Traceback" not in err, err
    return lines[0]


@pytest.mark.parametrize("args, says", [
    (["--out", "{d}/taken.png"], "already exists"),
    (["--factor", "20"], "upscale.factor"),
    (["--factor", "1"], "must be above 1"),
    (["--model", "{d}/x2.pth"], "pickle"),
    (["--model", "no-such-upscaler"], "not found"),
    (["--model", "{d}/x2.safetensors", "--refine", "1.5"], "--refine"),
])
def test_bad_input_is_one_line_before_any_model_loads(files, capsys, monkeypatch, args, says):
    import brushwork

    monkeypatch.setattr(brushwork, "Studio", lambda *a, **k: pytest.fail("a model was about to load"))
    argv = ["upscale", str(files / "in.png"), *[a.format(d=files) for a in args]]
    if "--out" not in argv:
        argv += ["--out", str(files / "out.png")]
    assert main(argv) == 2
    assert says in one_error(capsys)
    assert not (files / "out.png").exists()
    assert (files / "taken.png").read_bytes() == b"keep me"


def test_missing_picture(files, capsys):
    assert main(["upscale", str(files / "nope.png"), "--out", str(files / "out.png")]) == 2
    assert "no such file" in one_error(capsys)


def test_upscale_writes_the_picture_and_its_recipe(files, capsys):
    out = files / "out.png"
    assert main(["upscale", str(files / "in.png"), "--factor", "3", "--model", str(files / "x2.safetensors"),
                 "--out", str(out)]) == 0
    assert capsys.readouterr().out.strip() == str(out)
    # 130x100 -> the nearest multiples of 8 (128x96), x3
    assert Image.open(out).size == (384, 288)
    meta = read_metadata(out)
    assert meta.recipe.task == "upscale" and meta.recipe.upscale.factor == 3.0
    assert meta.recipe.upscale.model == str(files / "x2.safetensors")
    assert meta.parameters["Hires upscale"] == "3" and meta.parameters["Hires upscaler"] == "x2"
    assert meta.hashes.get("upscale.model")


def test_rerun_repeats_an_upscale_alone(files, capsys):
    out, again = files / "out.png", files / "again.png"
    assert main(["upscale", str(files / "in.png"), "--model", str(files / "x2.safetensors"), "--tile", "x",
                 "--out", str(out)]) == 0
    assert main(["rerun", str(out), "--out", str(again)]) == 0
    assert np.array_equal(np.asarray(Image.open(out)), np.asarray(Image.open(again)))
