"""The Python interface scripts rely on: brushwork.Studio() and what generate() returns."""

from __future__ import annotations

import subprocess
import sys

import brushwork
import pytest
from test_engine_support import recipe

pytestmark = pytest.mark.xdist_group("studio-api")


def test_top_level_studio_is_the_engine_studio_and_defaults_work(tiny_models, tmp_path):
    from brushwork.engine import Progress, Result, Studio

    assert brushwork.Studio is Studio
    studio = brushwork.Studio()  # settings from BRUSHWORK_HOME (per test), device auto = cpu here
    assert studio.device == "cpu" and studio.assets.root.is_dir()
    seen: list[Progress] = []
    result = studio.generate(recipe(tiny_models.sd15, batch=2, seed=9), on_progress=seen.append)
    assert isinstance(result, Result)
    assert len(result.images) == 2 and result.seeds == [9, 10] and result.recipe.seed == 9
    assert len(seen) == 4
    assert [p.name for p in result.save(tmp_path / "x.png")] == ["x-1.png", "x-2.png"]


def test_default_model_from_settings_is_recorded_in_the_recipe(tiny_models, monkeypatch):
    monkeypatch.setenv("BRUSHWORK_DEFAULT_MODEL", str(tiny_models.sd15))
    studio = brushwork.Studio()
    result = studio.generate(recipe("", seed=3))
    assert result.recipe.model == str(tiny_models.sd15)
    assert result.sources["model"] == str(tiny_models.sd15)


def test_settings_device_is_used(monkeypatch):
    monkeypatch.setenv("BRUSHWORK_DEVICE", "cpu")
    assert brushwork.Studio().device == "cpu"


def test_cuda_requested_without_cuda_is_a_clear_error():
    import torch

    if torch.cuda.is_available():
        pytest.skip("this machine has CUDA")
    with pytest.raises(brushwork.BrushworkError, match="CUDA is not available"):
        brushwork.Studio(device="cuda")


def test_importing_brushwork_does_not_import_torch():
    code = "import sys, brushwork; brushwork.Recipe(prompt='x').validate(); print('torch' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "False"
