"""The demo trainer's stages and the work folder that keeps the finished ones.

Stages: ``vae``, ``unet`` (needs vae), ``controlnet`` and ``inpaint`` (need vae and unet),
``decoder`` (needs vae). Each finished stage waits in a work folder beside the output, with the
text encoder it was trained against, until the model is saved (docs/demo.md, "Training")."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import torch

from . import manifest as demo_manifest

STAGES = ("vae", "unet", "controlnet", "inpaint", "decoder")
# What each stage needs (run with --no-save, a stage loads only these).
NEEDS = {"vae": (), "unet": ("vae",), "controlnet": ("vae", "unet"), "inpaint": ("vae", "unet"),
         "decoder": ("vae",)}
_FINAL_PLACES = {"vae": "vae", "decoder": "vae", "unet": "unet",
                 "controlnet": demo_manifest.CONTROLNET_SUBDIRS["depth"],
                 "inpaint": f"{demo_manifest.INPAINT_SUBDIR}/unet"}


def _model_class(stage: str):
    from diffusers import AutoencoderKL, ControlNetModel, UNet2DConditionModel

    return {"vae": AutoencoderKL, "unet": UNet2DConditionModel, "controlnet": ControlNetModel,
            "inpaint": UNet2DConditionModel, "decoder": AutoencoderKL}[stage]


class StageStore:
    """Finished stages, kept (fp32) in a work folder beside the output until the model is saved.

    A crash or Ctrl-C loses at most the stage in progress, and stages that only depend on earlier
    ones (controlnet, inpaint) can run as separate processes at the same time (``--no-save``).
    A stage not being trained comes from here, else from an earlier model in ``out``."""

    def __init__(self, work: Path, out: Path):
        self.work, self.out = work, out

    def has(self, stage: str) -> bool:
        return (self.work / stage / "config.json").is_file()

    @property
    def text_encoder_dir(self) -> Path:
        return self.work / "text_encoder"

    def has_text_encoder(self) -> bool:
        return (self.text_encoder_dir / "config.json").is_file()

    def keep_text_encoder(self, model) -> None:
        """Keep the text encoder beside the first finished stage: every stage in this folder was
        trained against it, so the model assembled from them (maybe on another machine) uses it."""
        if self.has_text_encoder():
            return
        self.work.mkdir(parents=True, exist_ok=True)
        tmp = self.work / "text_encoder.partial"
        shutil.rmtree(tmp, ignore_errors=True)
        model.save_pretrained(tmp, safe_serialization=True)
        tmp.rename(self.text_encoder_dir)

    def save(self, stage: str, module, loss: float, seconds: float) -> None:
        self.work.mkdir(parents=True, exist_ok=True)
        tmp = self.work / f"{stage}.partial"
        shutil.rmtree(tmp, ignore_errors=True)
        module.save_pretrained(tmp, safe_serialization=True)
        (tmp / "stage.json").write_text(json.dumps({"loss": loss, "seconds": seconds}))
        shutil.rmtree(self.work / stage, ignore_errors=True)
        tmp.rename(self.work / stage)

    def load(self, stage: str, device: torch.device):
        """(module, log or None, where it came from)."""
        if self.has(stage):
            folder, log = self.work / stage, json.loads((self.work / stage / "stage.json").read_text())
        else:
            folder, log = self.out / _FINAL_PLACES[stage], None
            if not (folder / "config.json").is_file():
                raise SystemExit(f"brushwork.demo.train: error: stage {stage!r} is not being trained and "
                                 f"neither {self.work / stage} nor {folder} has it; train it too (--stages)")
        module = _model_class(stage).from_pretrained(str(folder), torch_dtype=torch.float32)
        return module.to(device).eval().requires_grad_(False), log, folder
