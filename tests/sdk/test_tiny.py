"""The tiny model set other tests stand on: real layouts, real tokenizer, fast, deterministic."""

from __future__ import annotations

import hashlib
import json
import subprocess
import sys

import numpy as np
import pytest
import torch
from brushwork.testing import tiny as tiny_mod
from safetensors import safe_open


def _gen(pipe, **kw):
    g = torch.Generator().manual_seed(0)
    out = pipe("a red cat", num_inference_steps=2, height=64, width=64, output_type="np", generator=g, **kw)
    return out.images[0]


def test_names_are_stable_and_every_path_exists(tiny_models):
    t = tiny_models
    assert {p.name for p in [t.sd15, t.sd15_inpaint, t.sd15_single_file, t.sdxl, t.lora, t.embedding, t.vae]} == {
        "tiny-sd15", "tiny-sd15-inpaint", "tiny-sd15.safetensors", "tiny-sdxl",
        "lora-tiny.safetensors", "embedding-tiny.safetensors", "vae-tiny"}
    assert set(t.controlnets) == {"depth", "pose", "scribble", "lineart", "canny", "inpaint"}
    assert {p.name for p in t.controlnets.values()} == {f"controlnet-tiny-{k}" for k in t.controlnets}
    assert t.sdxl_controlnets["depth"].name == "controlnet-tiny-sdxl-depth"
    for path in [t.sd15, t.sd15_inpaint, t.sdxl, t.vae, *t.controlnets.values(), *t.sdxl_controlnets.values()]:
        assert path.is_dir(), path
    for path in [t.sd15_single_file, t.sdxl_single_file, t.lora, t.lora_kohya, t.embedding]:
        assert path.is_file(), path
    assert not list(t.root.glob("*.partial")), "no half-written model may be left behind"


def test_pipeline_folders_are_real_diffusers_layouts(tiny_models):
    index = json.loads((tiny_models.sd15 / "model_index.json").read_text())
    assert index["_class_name"] == "StableDiffusionPipeline"
    assert index["safety_checker"] == [None, None]
    assert not (tiny_models.sd15 / "safety_checker").exists()
    unet = json.loads((tiny_models.sd15_inpaint / "unet" / "config.json").read_text())
    assert unet["in_channels"] == 9
    xl_index = json.loads((tiny_models.sdxl / "model_index.json").read_text())
    assert xl_index["text_encoder_2"] == ["transformers", "CLIPTextModelWithProjection"]
    xl_unet = json.loads((tiny_models.sdxl / "unet" / "config.json").read_text())
    assert xl_unet["addition_embed_type"] == "text_time"
    net = json.loads((tiny_models.sdxl_controlnets["depth"] / "config.json").read_text())
    assert net["_class_name"] == "ControlNetModel" and net["addition_embed_type"] == "text_time"


def test_single_file_is_in_the_original_ldm_layout(tiny_models):
    with safe_open(str(tiny_models.sd15_single_file), "pt") as f:
        keys = list(f.keys())
    assert any(k.startswith("model.diffusion_model.input_blocks.") for k in keys)
    assert any(k.startswith("first_stage_model.encoder.down.") for k in keys)
    assert any(k.startswith("cond_stage_model.transformer.text_model.") for k in keys)
    assert not any(k.startswith(("unet.", "down_blocks.", "vae.")) for k in keys)
    assert "first_stage_model.decoder.mid.attn_1.q.weight" in keys
    with safe_open(str(tiny_models.sdxl_single_file), "pt") as f:
        xl_keys = list(f.keys())
    assert "conditioner.embedders.1.model.transformer.resblocks.0.attn.in_proj_weight" in xl_keys
    assert any(k.startswith("conditioner.embedders.0.transformer.text_model.") for k in xl_keys)
    assert any(k.startswith("model.diffusion_model.label_emb.") for k in xl_keys)


def test_the_real_clip_tokenizer_with_a_full_vocabulary(tiny_models):
    from transformers import CLIPTokenizer

    tok = CLIPTokenizer.from_pretrained(str(tiny_models.sd15 / "tokenizer"))
    assert len(tok) == 49408
    assert tok("a photo of a cat").input_ids == [49406, 320, 1125, 539, 320, 2368, 49407]
    assert tok.model_max_length == 77
    long = tok("cat " * 100, truncation=False).input_ids
    assert len(long) == 102  # real BPE: chunking past 77 tokens is for real
    te = json.loads((tiny_models.sd15 / "text_encoder" / "config.json").read_text())
    assert te["vocab_size"] == 49408 and te["hidden_size"] == 32


@pytest.mark.slow
def test_txt2img_inpaint_controlnet_lora_embedding_all_run(tiny_models):
    from diffusers import (
        ControlNetModel,
        StableDiffusionControlNetPipeline,
        StableDiffusionInpaintPipeline,
        StableDiffusionPipeline,
    )
    from PIL import Image

    pipe = StableDiffusionPipeline.from_pretrained(tiny_models.sd15, local_files_only=True)
    pipe.set_progress_bar_config(disable=True)
    base = _gen(pipe)
    assert base.shape == (64, 64, 3) and base.std() > 0.01
    control = Image.fromarray((np.random.RandomState(0).rand(64, 64, 3) * 255).astype("uint8"))
    cn = StableDiffusionControlNetPipeline.from_pipe(
        pipe, controlnet=ControlNetModel.from_pretrained(tiny_models.controlnets["depth"]))
    assert np.abs(_gen(cn, image=control) - base).mean() > 1e-3, "the ControlNet must change the image"
    pipe.load_lora_weights(str(tiny_models.lora), adapter_name="tiny")
    with_lora = _gen(pipe)
    assert np.abs(with_lora - base).mean() > 1e-3, "the LoRA must change the image"
    pipe.unload_lora_weights()
    pipe.load_lora_weights(str(tiny_models.lora_kohya), adapter_name="kohya")
    assert np.allclose(_gen(pipe), with_lora, atol=1e-5), "kohya naming: same LoRA, same image"
    pipe.unload_lora_weights()
    pipe.load_textual_inversion(str(tiny_models.embedding), token="embedding-tiny")
    expanded = pipe.maybe_convert_prompt("embedding-tiny", pipe.tokenizer)  # 2 vectors: 2 tokens
    assert len(pipe.tokenizer(expanded).input_ids) == 2 + 2
    inpaint = StableDiffusionInpaintPipeline.from_pretrained(tiny_models.sd15_inpaint, local_files_only=True)
    inpaint.set_progress_bar_config(disable=True)
    mask = Image.new("L", (64, 64), 0)
    assert _gen(inpaint, image=control, mask_image=mask).shape == (64, 64, 3)


def test_sdxl_and_its_controlnet_run(tiny_models):
    from diffusers import ControlNetModel, StableDiffusionXLControlNetPipeline, StableDiffusionXLPipeline
    from PIL import Image

    pipe = StableDiffusionXLPipeline.from_pretrained(tiny_models.sdxl, local_files_only=True)
    pipe.set_progress_bar_config(disable=True)
    base = _gen(pipe)
    assert base.shape == (64, 64, 3)
    net = ControlNetModel.from_pretrained(tiny_models.sdxl_controlnets["depth"])
    cn = StableDiffusionXLControlNetPipeline.from_pipe(pipe, controlnet=net)
    assert np.abs(_gen(cn, image=Image.new("RGB", (64, 64), "white")) - base).mean() > 1e-3


def _sha(path):
    return hashlib.sha256(path.read_bytes()).hexdigest()


def test_builders_are_deterministic_and_take_other_configs(tmp_path):
    from diffusers import StableDiffusionPipeline

    unet = {"block_out_channels": (32, 64, 64), "layers_per_block": 1,
            "down_block_types": ("DownBlock2D", "CrossAttnDownBlock2D", "CrossAttnDownBlock2D"),
            "up_block_types": ("CrossAttnUpBlock2D", "CrossAttnUpBlock2D", "UpBlock2D")}
    a = tiny_mod.build_tiny_sd15(tmp_path / "a", seed=3, unet=dict(unet), text_encoder={"num_hidden_layers": 2})
    b = tiny_mod.build_tiny_sd15(tmp_path / "b", seed=3, unet=dict(unet), text_encoder={"num_hidden_layers": 2})
    for part in ("unet", "vae", "text_encoder"):
        assert _sha(next((a / part).glob("*.safetensors"))) == _sha(next((b / part).glob("*.safetensors")))
    pipe = StableDiffusionPipeline.from_pretrained(a, local_files_only=True)
    pipe.set_progress_bar_config(disable=True)
    assert _gen(pipe).shape == (64, 64, 3)
    net = tiny_mod.build_tiny_controlnet(tmp_path / "cn", base=a)
    cfg = json.loads((net / "config.json").read_text())
    assert cfg["block_out_channels"] == [32, 64, 64] and cfg["layers_per_block"] == 1


def test_command_line_usage_error_is_one_line():
    proc = subprocess.run([sys.executable, "-m", "brushwork.testing.tiny"], capture_output=True, text=True)
    assert proc.returncode == 2
    assert proc.stderr.strip() == "usage: python -m brushwork.testing.tiny DIR"


@pytest.mark.slow
def test_command_line_writes_the_whole_set(tmp_path):
    proc = subprocess.run([sys.executable, "-m", "brushwork.testing.tiny", str(tmp_path / "set")],
                          capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr[-2000:]
    written = tiny_mod.load_tiny_set(tmp_path / "set")
    assert written.sd15_single_file.is_file() and written.sdxl_controlnets["depth"].is_dir()
