"""Writing the trained demo model: fp16 safetensors in diffusers layout, manifest and card."""

from __future__ import annotations

import json
import shutil
from dataclasses import asdict
from pathlib import Path

import torch
import torch.nn.functional as F

from . import manifest as demo_manifest

TOKENIZER_DIR = Path(__file__).resolve().parents[1] / "models" / "configs" / "clip-tokenizer"



def latent_rgb_factors(vae, latents: torch.Tensor, images: torch.Tensor) -> dict:
    """Least-squares latent -> RGB map (for step previews without a VAE decode), like the
    published SD 1.5 factors: rows = latent channels, columns = R, G, B, plus a bias."""
    latents, images = latents.cpu(), images.cpu()
    small = F.avg_pool2d(images, 8)  # one RGB value per latent cell, in [-1, 1]
    x = latents.permute(0, 2, 3, 1).reshape(-1, latents.shape[1]) * vae.config.scaling_factor
    y = small.permute(0, 2, 3, 1).reshape(-1, 3)
    design = torch.cat([x, torch.ones(x.shape[0], 1)], dim=1)
    solution = torch.linalg.lstsq(design, y).solution
    return {"factors": [[round(float(v), 4) for v in row] for row in solution[:-1]],
            "bias": [round(float(v), 4) for v in solution[-1]]}


def save_pipelines(out: Path, parts: dict, info: dict, plan) -> None:
    """Write every part as fp16 safetensors in diffusers layout, then the manifest and card."""
    from diffusers import StableDiffusionInpaintPipeline, StableDiffusionPipeline

    def half(module):
        return module.to("cpu", torch.float16)

    common = dict(vae=half(parts["vae"]), text_encoder=half(parts["text_encoder"]),
                  tokenizer=parts["tokenizer"], scheduler=parts["scheduler"], safety_checker=None,
                  feature_extractor=None, requires_safety_checker=False)
    StableDiffusionPipeline(unet=half(parts["unet"]), **common).save_pretrained(out, safe_serialization=True)
    StableDiffusionInpaintPipeline(unet=half(parts["inpaint"]), **common).save_pretrained(
        out / demo_manifest.INPAINT_SUBDIR, safe_serialization=True)
    half(parts["controlnet"]).save_pretrained(out / demo_manifest.CONTROLNET_SUBDIRS["depth"],
                                              safe_serialization=True)
    for module in parts.values():
        if isinstance(module, torch.nn.Module):
            module.float()
    # transformers writes a 3.6 MB tokenizer.json; the BPE vocab/merges it came from are 1.4 MB
    # and load the very same tokenizer (the weights budget is 20 MB for everything).
    for folder in (out / "tokenizer", out / demo_manifest.INPAINT_SUBDIR / "tokenizer"):
        shutil.rmtree(folder)
        shutil.copytree(TOKENIZER_DIR, folder)
    manifest = demo_manifest.build(native_size=plan.size, training=info, plan=asdict(plan))
    (out / demo_manifest.MANIFEST_NAME).write_text(json.dumps(manifest, indent=2) + "\n")
    (out / "README.md").write_text(demo_manifest.model_card(manifest))
