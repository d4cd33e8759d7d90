"""``python -m brushwork.demo.train --quick``: runs in seconds, writes a model our loaders load,
is reproducible, retrains single stages, and fails cleanly."""

from __future__ import annotations

import hashlib
import os
import subprocess
import sys
from pathlib import Path

import pytest
from brushwork import Recipe
from brushwork.demo import manifest, train

REPO = Path(__file__).resolve().parents[2]


def digest(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def run_cli(*args: str) -> subprocess.CompletedProcess:
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    return subprocess.run([sys.executable, "-m", "brushwork.demo.train", *args], capture_output=True,
                          text=True, env=env, cwd=REPO, timeout=300)


@pytest.fixture(scope="module")
def quick_model(tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("quick") / "model"
    train.train(out, train.Plan.quick(), quiet=True)
    return out


def test_quick_model_has_every_part(quick_model):
    for rel in ("model_index.json", "unet/diffusion_pytorch_model.safetensors", "vae/config.json",
                "text_encoder/model.safetensors", "tokenizer/vocab.json", "tokenizer/merges.txt",
                "inpaint/model_index.json", "inpaint/unet/config.json",
                "controlnet-depth/diffusion_pytorch_model.safetensors", "demo.json", "README.md"):
        assert (quick_model / rel).is_file(), rel
    assert not list(quick_model.parent.glob("*.partial")) and not list(quick_model.parent.glob("*.old"))
    assert manifest.read(quick_model)["native_size"] == 64


def test_quick_model_loads_and_generates_through_studio(studio, quick_model):
    result = studio.generate(Recipe(prompt="red bricks", model=str(quick_model), steps=2, width=64, height=64,
                                    seed=3))
    assert result.images[0].size == (64, 64)


@pytest.mark.slow
def test_training_is_reproducible(quick_model, tmp_path):
    again = tmp_path / "again"
    train.train(again, train.Plan.quick(), quiet=True)
    for rel in ("unet/diffusion_pytorch_model.safetensors", "vae/diffusion_pytorch_model.safetensors",
                "text_encoder/model.safetensors", "controlnet-depth/diffusion_pytorch_model.safetensors",
                "inpaint/unet/diffusion_pytorch_model.safetensors"):
        assert digest(quick_model / rel) == digest(again / rel), f"{rel} differs between two runs"


@pytest.mark.slow
def test_one_stage_retrains_alone_and_the_rest_is_kept(quick_model, tmp_path):
    import shutil

    copy = tmp_path / "model"
    shutil.copytree(quick_model, copy)
    before = {rel: digest(copy / rel) for rel in ("unet/diffusion_pytorch_model.safetensors",
                                                  "vae/diffusion_pytorch_model.safetensors")}
    plan = train.Plan.quick()
    plan.seed = 99  # a different seed, so a retrained ControlNet must come out different
    train.train(copy, plan, stages=("controlnet",), quiet=True)
    for rel, value in before.items():
        assert digest(copy / rel) == value, f"{rel} changed though its stage was not retrained"
    cn = "controlnet-depth/diffusion_pytorch_model.safetensors"
    assert digest(copy / cn) != digest(quick_model / cn)


@pytest.mark.slow
def test_cli_quick_run(tmp_path):
    proc = run_cli("--quick", "--quiet", "--out", str(tmp_path / "m"))
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert (tmp_path / "m" / "model_index.json").is_file()


def test_cli_rejects_unknown_stages(tmp_path):
    with pytest.raises(SystemExit) as exc:
        train.main(["--quick", "--stages", "vae,colour", "--out", str(tmp_path / "m")])
    assert exc.value.code == 2
    assert not (tmp_path / "m").exists()


def test_a_new_vae_without_the_stages_that_build_on_it_is_refused(tmp_path):
    with pytest.raises(SystemExit) as exc:
        train.main(["--quick", "--stages", "vae,unet", "--out", str(tmp_path / "m")])
    assert exc.value.code == 2
    assert not (tmp_path / "m").exists()


def test_missing_earlier_stage_is_a_clear_error_and_writes_nothing(tmp_path, capsys):
    out = tmp_path / "empty"
    with pytest.raises(SystemExit) as exc:
        train.main(["--quick", "--quiet", "--stages", "controlnet", "--out", str(out)])
    assert "stage 'vae' is not being trained" in str(exc.value)
    assert not out.exists() and not list(tmp_path.glob("*.partial"))


def test_stages_are_assembled_with_the_text_encoder_they_were_trained_against(tmp_path):
    """Stages trained elsewhere (the GPU machine, another torch) come back with their text encoder:
    assembling them here must use it, not a fresh random init that may differ."""
    import torch
    from transformers import CLIPTextModel

    work, out = tmp_path / "work", tmp_path / "model"
    train.train(out, train.Plan.quick(), quiet=True, save=False, work=work)
    kept = work / "text_encoder"
    assert (kept / "config.json").is_file()
    encoder = CLIPTextModel.from_pretrained(str(kept))
    bias = encoder.get_input_embeddings().weight
    with torch.no_grad():  # stand in for "another machine's init": weights no seed here gives
        bias.add_(0.5)
    encoder.save_pretrained(kept)
    train.train(out, train.Plan.quick(), stages=(), quiet=True, work=work)
    shipped = CLIPTextModel.from_pretrained(str(out / "text_encoder")).get_input_embeddings().weight
    assert torch.allclose(shipped.float(), bias.half().float())
