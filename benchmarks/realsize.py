"""Real-size architectures with random weights, saved once in diffusers layout.

Speed does not depend on weight values, so published configs are enough to measure real per-step
cost without a download: SD 1.5 / SDXL from the package (brushwork/models/configs), SD-Turbo
(the SD 2.1 architecture: OpenCLIP-H text encoder, 1024-wide cross-attention) from
benchmarks/configs/sd-turbo.

``shrink`` builds the SAME configs with a few widths overridden (the CPU smoke test of the GPU
benchmarks): every other key, and so every code path, is the published one.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path

CONFIGS = Path(__file__).resolve().parents[1] / "sdk" / "brushwork" / "models" / "configs"
BENCH_CONFIGS = Path(__file__).resolve().parent / "configs"
CACHE = Path(__file__).resolve().parent / "out" / "models"
FAMILIES = ("sd15", "sdxl", "sd-turbo")

# Tiny widths for the smoke test (keys per part, merged over the published config). The text
# width stays 1024 (one layer): the 1024-wide cross-attention is what makes a folder "sd2", so the
# tiny SD-Turbo goes through the Studio's sd2 path too. Real vocab and tokenizer: prompts tokenize
# exactly as on the real model.
SHRINK = {
    "unet": {"block_out_channels": [32, 32, 64, 64], "attention_head_dim": [2, 2, 4, 4], "layers_per_block": 1,
             "norm_num_groups": 8},
    "vae": {"block_out_channels": [16, 16, 32, 32], "norm_num_groups": 8, "layers_per_block": 1},
    "text_encoder": {"intermediate_size": 64, "num_hidden_layers": 1, "projection_dim": 32},
}


def config_dir(family: str) -> Path:
    if family not in FAMILIES:
        raise ValueError(f"unknown architecture {family!r}: one of {', '.join(FAMILIES)}")
    return BENCH_CONFIGS / family if (BENCH_CONFIGS / family).is_dir() else CONFIGS / family


def _config(family: str, part: str, shrink: dict | None = None) -> dict:
    cfg = json.loads((config_dir(family) / part / "config.json").read_text())
    return {**cfg, **(shrink or {}).get(part, {})}


def _tokenizer(folder: Path, pad_token: str | None) -> None:
    shutil.copytree(CONFIGS / "clip-tokenizer", folder)
    if pad_token is not None:  # SD 2.x and SDXL's second tokenizer pad with "!" (OpenCLIP)
        for name in ("tokenizer_config.json", "special_tokens_map.json"):
            data = json.loads((folder / name).read_text())
            data["pad_token"] = pad_token
            (folder / name).write_text(json.dumps(data, indent=2))


def realsize_pipeline(family: str = "sd15", *, dtype=None, device: str | None = None,
                      shrink: dict | None = None, folder: Path | None = None) -> Path:
    """A saved random-weight pipeline folder of the architecture (built on first use).

    ``device``: where the random weights are initialised (a GPU does it in seconds where a CPU
    takes minutes for SDXL); the folder is the same either way. ``shrink``: see SHRINK (then name
    the ``folder``: the default one is the real size's)."""
    import torch
    from diffusers import AutoencoderKL, UNet2DConditionModel
    from transformers import CLIPTextConfig, CLIPTextModel, CLIPTextModelWithProjection

    dtype = dtype or torch.float16
    src = config_dir(family)
    folder = Path(folder) if folder else CACHE / f"{family}-random-{str(dtype).split('.')[-1]}"
    if (folder / "COMPLETE").exists():
        return folder
    partial = folder.with_name(folder.name + ".partial")  # a crash never leaves a half-written model
    shutil.rmtree(partial, ignore_errors=True)
    torch.manual_seed(0)
    shutil.copytree(src, partial)
    encoders = [("text_encoder", CLIPTextModel)]
    if family == "sdxl":
        encoders.append(("text_encoder_2", CLIPTextModelWithProjection))
    if shrink and family == "sdxl":
        raise ValueError("shrink is for single-encoder architectures (the tiny SDXL is brushwork.testing.tiny's)")
    with torch.device(device or "cpu"):
        UNet2DConditionModel.from_config(_config(family, "unet", shrink)).to(dtype).save_pretrained(partial / "unet")
        AutoencoderKL.from_config(_config(family, "vae", shrink)).to(dtype).save_pretrained(partial / "vae")
        for part, cls in encoders:
            cls(CLIPTextConfig(**_config(family, part, shrink))).to(dtype).save_pretrained(partial / part)
    pads = {"sd15": (None,), "sdxl": (None, "!"), "sd-turbo": ("!",)}[family]
    for tok, pad in zip(("tokenizer", "tokenizer_2"), pads, strict=False):  # sd15/sd-turbo: one tokenizer only
        if not (partial / tok).exists():
            _tokenizer(partial / tok, pad)
    (partial / "COMPLETE").write_text("ok")
    shutil.rmtree(folder, ignore_errors=True)
    partial.rename(folder)
    return folder


def realsize_controlnet(family: str = "sd15", *, dtype=None, device: str | None = None) -> Path:
    import torch
    from diffusers import ControlNetModel

    dtype = dtype or torch.float16
    folder = CACHE / f"controlnet-{family}-random-{str(dtype).split('.')[-1]}"
    if (folder / "COMPLETE").exists():
        return folder
    cfg = json.loads((CONFIGS / f"controlnet-{family}" / "config.json").read_text())
    torch.manual_seed(1)
    partial = folder.with_name(folder.name + ".partial")
    shutil.rmtree(partial, ignore_errors=True)
    with torch.device(device or "cpu"):
        ControlNetModel.from_config(cfg).to(dtype).save_pretrained(partial)
    (partial / "COMPLETE").write_text("ok")
    shutil.rmtree(folder, ignore_errors=True)
    partial.rename(folder)
    return folder
