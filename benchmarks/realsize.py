"""Real-size architectures with random weights, saved once in diffusers layout.

Speed does not depend on weight values, so the published SD 1.5 / SDXL configs that the package
ships (brushwork/models/configs) are enough to measure real per-step cost without a download.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path

CONFIGS = Path(__file__).resolve().parents[1] / "sdk" / "brushwork" / "models" / "configs"
CACHE = Path(__file__).resolve().parent / "out" / "models"


def _config(family: str, part: str) -> dict:
    return json.loads((CONFIGS / family / part / "config.json").read_text())


def realsize_pipeline(family: str = "sd15", *, dtype=None) -> Path:
    """A saved random-weight pipeline folder of the real architecture (built on first use)."""
    import torch
    from diffusers import AutoencoderKL, UNet2DConditionModel
    from transformers import CLIPTextConfig, CLIPTextModel, CLIPTextModelWithProjection

    dtype = dtype or torch.float16
    folder = CACHE / f"{family}-random-{str(dtype).split('.')[-1]}"
    if (folder / "COMPLETE").exists():
        return folder
    shutil.rmtree(folder, ignore_errors=True)
    torch.manual_seed(0)
    src = CONFIGS / family
    shutil.copytree(src, folder)
    UNet2DConditionModel.from_config(_config(family, "unet")).to(dtype).save_pretrained(folder / "unet")
    AutoencoderKL.from_config(_config(family, "vae")).to(dtype).save_pretrained(folder / "vae")
    encoders = [("text_encoder", CLIPTextModel)]
    if family == "sdxl":
        encoders.append(("text_encoder_2", CLIPTextModelWithProjection))
    for part, cls in encoders:
        cls(CLIPTextConfig(**_config(family, part))).to(dtype).save_pretrained(folder / part)
    for tok in ("tokenizer", "tokenizer_2") if family == "sdxl" else ("tokenizer",):
        if not (folder / tok).exists():
            shutil.copytree(CONFIGS / "clip-tokenizer", folder / tok)
    (folder / "COMPLETE").write_text("ok")
    return folder


def realsize_controlnet(family: str = "sd15", *, dtype=None) -> Path:
    import torch
    from diffusers import ControlNetModel

    dtype = dtype or torch.float16
    folder = CACHE / f"controlnet-{family}-random-{str(dtype).split('.')[-1]}"
    if (folder / "COMPLETE").exists():
        return folder
    cfg = json.loads((CONFIGS / f"controlnet-{family}" / "config.json").read_text())
    torch.manual_seed(1)
    ControlNetModel.from_config(cfg).to(dtype).save_pretrained(folder)
    (folder / "COMPLETE").write_text("ok")
    return folder
