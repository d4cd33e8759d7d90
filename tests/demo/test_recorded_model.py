"""The Recipe in every PNG records the model that actually ran, and `rerun` uses exactly it
(issue 19: `brushwork info` used to show "model": "", so a rerun elsewhere took whatever default)."""

from __future__ import annotations

import numpy as np
from brushwork.cli import main
from brushwork.metadata import read_metadata
from PIL import Image


def test_no_model_given_records_the_demo_and_rerun_uses_it(tmp_path, capsys, monkeypatch):
    out = tmp_path / "a.png"
    assert main(["generate", "red bricks", "--steps", "2", "--seed", "5", "--out", str(out)]) == 0
    meta = read_metadata(out)
    assert meta.recipe.model == "brushwork-demo"
    assert meta.hashes["model"]  # and its hash, for `rerun` to compare
    # another default model configured later must not change what the rerun uses
    monkeypatch.setenv("BRUSHWORK_DEFAULT_MODEL", "no-such-default-model")
    again = tmp_path / "again.png"
    assert main(["rerun", str(out), "--out", str(again)]) == 0
    with Image.open(out) as a, Image.open(again) as b:
        assert np.array_equal(np.asarray(a), np.asarray(b))
    assert read_metadata(again).recipe.model == "brushwork-demo"


def test_a_recorded_model_that_is_not_here_is_said_clearly(tmp_path, capsys):
    from brushwork.metadata import save_png
    from brushwork.recipe import Recipe

    made = tmp_path / "elsewhere.png"
    save_png(Image.new("RGB", (64, 64)), made, Recipe(prompt="x", model="someones-finetune", seed=1,
                                                        width=64, height=64))
    assert main(["rerun", str(made), "--out", str(tmp_path / "b.png")]) == 2
    err = capsys.readouterr().err
    assert "someones-finetune" in err and "Traceback" not in err
    assert not (tmp_path / "b.png").exists()
