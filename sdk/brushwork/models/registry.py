"""Known models on the Hugging Face hub (stdlib only): defaults, recommended settings, ControlNets.

Everything here is data the rest of the code reads; nothing is downloaded by importing it.
"""

from __future__ import annotations

from dataclasses import dataclass

from ..errors import ModelNotFoundError


@dataclass(frozen=True)
class KnownModel:
    hub_id: str
    family: str
    variant: str
    steps: int
    cfg: float
    sampler: str
    size: int  # the side it was trained at
    lora: str | None = None  # a LoRA that makes the variant (LCM-LoRA on a base model)
    note: str = ""


KNOWN_MODELS: tuple[KnownModel, ...] = (
    KnownModel("stable-diffusion-v1-5/stable-diffusion-v1-5", "sd15", "base", 25, 7.0, "DPM++ 2M Karras", 512),
    KnownModel("stable-diffusion-v1-5/stable-diffusion-inpainting", "sd15", "inpaint", 25, 7.0,
               "DPM++ 2M Karras", 512),
    KnownModel("SimianLuo/LCM_Dreamshaper_v7", "sd15", "lcm", 4, 1.5, "LCM", 512),
    KnownModel("stabilityai/sd-turbo", "sd2", "turbo", 1, 0.0, "Euler a", 512,
               note="SD 2.1 distilled: loads from the hub; SD 1.5 ControlNets/LoRAs do not fit it"),
    KnownModel("stabilityai/stable-diffusion-xl-base-1.0", "sdxl", "base", 30, 6.0, "DPM++ 2M Karras", 1024),
    KnownModel("stabilityai/sdxl-turbo", "sdxl", "turbo", 1, 0.0, "Euler a", 512),
    KnownModel("stabilityai/stable-diffusion-xl-base-1.0", "sdxl", "lcm", 4, 1.0, "LCM", 1024,
               lora="latent-consistency/lcm-lora-sdxl"),
    KnownModel("diffusers/stable-diffusion-xl-1.0-inpainting-0.1", "sdxl", "inpaint", 30, 6.0,
               "DPM++ 2M Karras", 1024),
)

# The default model per (family, variant); the first entry of KNOWN_MODELS wins.
DEFAULTS: dict[tuple[str, str], KnownModel] = {}
for _m in KNOWN_MODELS:
    DEFAULTS.setdefault((_m.family, _m.variant), _m)

# Recommended settings per variant when the model is not a known one (a fine-tune, a local file).
VARIANT_SETTINGS: dict[str, dict] = {
    "base": {"steps": 25, "cfg": 7.0, "sampler": "DPM++ 2M Karras"},
    "inpaint": {"steps": 25, "cfg": 7.0, "sampler": "DPM++ 2M Karras"},
    "turbo": {"steps": 1, "cfg": 0.0, "sampler": "Euler a"},
    "lcm": {"steps": 4, "cfg": 1.5, "sampler": "LCM"},
}

# ControlNet per family per kind (the kinds of brushwork.recipe.CONTROL_KINDS).
CONTROLNETS: dict[str, dict[str, str]] = {
    "sd15": {
        "depth": "lllyasviel/control_v11f1p_sd15_depth",
        "pose": "lllyasviel/control_v11p_sd15_openpose",
        "scribble": "lllyasviel/control_v11p_sd15_scribble",
        "lineart": "lllyasviel/control_v11p_sd15_lineart",
        "canny": "lllyasviel/control_v11p_sd15_canny",
        "inpaint": "lllyasviel/control_v11p_sd15_inpaint",
        "normal": "lllyasviel/control_v11p_sd15_normalbae",  # camera-space normals, ScanNet colours
    },
    "sdxl": {
        "depth": "diffusers/controlnet-depth-sdxl-1.0",
        "pose": "thibaud/controlnet-openpose-sdxl-1.0",
        "canny": "diffusers/controlnet-canny-sdxl-1.0",
        "scribble": "xinsir/controlnet-scribble-sdxl-1.0",
        "lineart": "TheMistoAI/MistoLine",
    },
}
_KIND_ALIASES = {"openpose": "pose", "sketch": "scribble", "line": "lineart", "edges": "canny",
                 "normals": "normal", "normalbae": "normal"}

# Estimators (preprocessors from controlnet-aux) and the licence of their weights.
ESTIMATOR_LICENCES: dict[str, str] = {
    "depth-anything-v2-small": "Apache-2.0",
    "midas": "MIT",
    "zoe": "MIT",
    "lineart": "MIT",
    "canny": "no weights (OpenCV algorithm)",
    "openpose": "non-commercial research only (CMU OpenPose weights)",
    "pidinet": "non-commercial research only",
}


def default_model(family: str = "sd15", variant: str = "base") -> KnownModel:
    try:
        return DEFAULTS[(family, variant)]
    except KeyError:
        raise ModelNotFoundError(f"no known {family} {variant} model") from None


def known(hub_id: str) -> KnownModel | None:
    for m in KNOWN_MODELS:
        if m.hub_id.lower() == hub_id.lower() and m.lora is None:
            return m
    return None


def recommended(family: str | None, variant: str | None, hub_id: str | None = None) -> dict:
    """steps/cfg/sampler to suggest for a model (known hub ids first, then the variant's rule)."""
    if hub_id and (m := known(hub_id)):
        return {"steps": m.steps, "cfg": m.cfg, "sampler": m.sampler}
    return dict(VARIANT_SETTINGS.get(variant or "base", VARIANT_SETTINGS["base"]))


def is_control_kind(name: str) -> bool:
    return _KIND_ALIASES.get(name, name) in CONTROLNETS["sd15"]


def controlnet_id(family: str | None, kind: str) -> str:
    """The hub id of the ControlNet for ``kind`` on ``family``, or a clear error naming both."""
    kind = _KIND_ALIASES.get(kind, kind)
    family = family or "sd15"
    table = CONTROLNETS.get(family)
    if table is None:
        raise ModelNotFoundError(f"no ControlNets are known for {family} models; use an SD 1.5 or SDXL model")
    if kind not in table:
        have = ", ".join(sorted(table))
        raise ModelNotFoundError(
            f"no public {kind} ControlNet is known for {family} (available: {have}); "
            f"pass one with --controlnet {kind}=ID_OR_PATH")
    return table[kind]
