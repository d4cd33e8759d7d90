"""`brushwork models list|pull|info` through the real CLI entry point."""

from __future__ import annotations

import hashlib
import json
import subprocess
import sys

import pytest
from brushwork.cli import main


@pytest.fixture
def model_dirs(monkeypatch, tiny_models):
    monkeypatch.setenv("BRUSHWORK_MODEL_DIRS", str(tiny_models.root))
    return tiny_models


def test_list_shows_every_kind_once(model_dirs, capsys):
    assert main(["models", "list", "--json"]) == 0
    rows = [json.loads(line) for line in capsys.readouterr().out.splitlines()]
    local = {(r["kind"], r["name"]) for r in rows if r["source"] != "hub"}
    assert {("pipeline", "tiny-sd15"), ("pipeline", "tiny-sd15.safetensors"), ("pipeline", "tiny-sdxl"),
            ("pipeline", "tiny-sd15-inpaint"), ("controlnet", "controlnet-tiny-depth"), ("vae", "vae-tiny"),
            ("lora", "lora-tiny"), ("embedding", "embedding-tiny")} <= local
    assert not any("/unet" in name or "/vae" in name for _, name in local), "never list a pipeline's parts"
    assert len(local) == len([r for r in rows if r["source"] != "hub"])
    assert main(["models", "list", "--kind", "lora"]) == 0
    out = capsys.readouterr().out
    assert "lora-tiny" in out and "tiny-sdxl" not in out


def test_list_with_nothing_says_how_to_add_models(monkeypatch, capsys, tmp_path):
    from huggingface_hub import constants

    monkeypatch.setattr(constants, "HF_HUB_CACHE", str(tmp_path / "hf"))
    monkeypatch.setenv("BRUSHWORK_MODEL_DIRS", str(tmp_path))
    monkeypatch.setattr("brushwork.models.sources._demo_weights", lambda: None)
    assert main(["models", "list"]) == 0
    assert "no models found" in capsys.readouterr().out


def test_info_shows_family_source_files_and_hash(model_dirs, capsys):
    assert main(["models", "info", "tiny-sd15.safetensors", "--json"]) == 0
    row = json.loads(capsys.readouterr().out)
    assert (row["kind"], row["family"], row["variant"], row["source"]) == ("pipeline", "sd15", "base", "single_file")
    assert row["sha256"] == hashlib.sha256(model_dirs.sd15_single_file.read_bytes()).hexdigest()
    assert row["recommended"]["sampler"]
    assert main(["models", "info", "controlnet-tiny-sdxl-depth"]) == 0
    out = capsys.readouterr().out
    assert "controlnet" in out and "sdxl" in out and "sha256:" in out


def test_info_unknown_name_is_one_line_exit_2(model_dirs, capsys):
    assert main(["models", "info", "no-such-model"]) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("brushwork: error: model 'no-such-model' not found") and "\n" not in err


def test_pull_offline_and_without_network_fail_in_one_line(monkeypatch, capsys):
    assert main(["models", "pull", "stabilityai/sdxl-turbo"]) == 2  # conftest: HF_HUB_OFFLINE=1
    assert "offline" in capsys.readouterr().err
    from huggingface_hub import constants

    monkeypatch.delenv("HF_HUB_OFFLINE")
    monkeypatch.setattr(constants, "ENDPOINT", "http://127.0.0.1:9")  # nothing listens there
    assert main(["models", "pull", "stabilityai/sdxl-turbo"]) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("brushwork: error: cannot download stabilityai/sdxl-turbo: no network") and "\n" not in err
    assert main(["models", "pull", "not-a-hub-id"]) == 2
    assert "OWNER/NAME" in capsys.readouterr().err


def test_models_layer_imports_without_torch():
    code = ("import sys; import brushwork.models.commands, brushwork.models.sources, brushwork.models.loading;"
            "assert 'torch' not in sys.modules and 'diffusers' not in sys.modules, 'heavy import'")
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert proc.returncode == 0, proc.stderr
