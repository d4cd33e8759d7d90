"""`brushwork models list` names the upscalers in the model folders (A1111's ESRGAN, ComfyUI's
upscale_models, ...) by the name a Recipe's ``upscale.model`` takes, pickles marked."""

from __future__ import annotations

import json

from brushwork.cli import main
from brushwork.models.upscalers import resolve_upscaler
from brushwork.testing.tiny_upscaler import build_tiny_esrgan


def test_list_shows_the_upscalers_in_the_model_folders(tmp_path, monkeypatch, capsys):
    build_tiny_esrgan(tmp_path / "ESRGAN" / "4x-Tiny.safetensors", scale=4)
    build_tiny_esrgan(tmp_path / "models" / "upscale_models" / "2x-Old.pth", scale=2)
    monkeypatch.setenv("BRUSHWORK_MODEL_DIRS", str(tmp_path))

    assert main(["models", "list", "--json"]) == 0
    rows = [json.loads(line) for line in capsys.readouterr().out.splitlines()]
    upscalers = {r["name"]: r for r in rows if r["kind"] == "upscaler"}
    assert set(upscalers) == {"4x-Tiny", "2x-Old"}
    assert upscalers["4x-Tiny"]["location"] == str(tmp_path / "ESRGAN" / "4x-Tiny.safetensors")
    assert (upscalers["4x-Tiny"]["pickle"], upscalers["2x-Old"]["pickle"]) == (False, True)
    # the listed name is the one a Recipe's upscale.model resolves
    assert resolve_upscaler("4x-Tiny").path == tmp_path / "ESRGAN" / "4x-Tiny.safetensors"

    assert main(["models", "list", "--kind", "upscaler"]) == 0
    out = capsys.readouterr().out
    assert "4x-Tiny" in out and "2x-Old" in out and "BRUSHWORK_ALLOW_PICKLE=1" in out
    assert "no models found" not in out

    assert main(["models", "list", "--kind", "lora", "--json"]) == 0
    kinds = {json.loads(line)["kind"] for line in capsys.readouterr().out.splitlines()}
    assert "upscaler" not in kinds  # another kind asked: no upscalers


def test_upscaler_and_ip_adapter_folders_are_not_listed_as_other_kinds(tmp_path, monkeypatch, capsys):
    """Their files' keys match no checkpoint, LoRA, VAE, ControlNet or embedding, so a walk into
    them showed each as every kind; the listing skips those folders (models/modeldirs.py)."""
    from brushwork.models import ip_adapter, modeldirs, upscalers

    assert set(upscalers.SUBDIRS) | (set(ip_adapter.SUBDIRS) - set(modeldirs.SUBDIRS["controlnet"])) \
        == modeldirs.OTHER_KIND_FOLDERS
    build_tiny_esrgan(tmp_path / "ESRGAN" / "4x-Tiny.safetensors", scale=4)
    monkeypatch.setenv("BRUSHWORK_MODEL_DIRS", str(tmp_path))
    assert main(["models", "list", "--json"]) == 0
    rows = [json.loads(line) for line in capsys.readouterr().out.splitlines()]
    mine = [(r["kind"], r["name"]) for r in rows if str(tmp_path) in r["location"]]
    assert mine == [("upscaler", "4x-Tiny")]
