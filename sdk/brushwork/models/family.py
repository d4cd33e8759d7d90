"""Which model family a file or folder is: detected from its CONTENT (stdlib only).

Families: ``sd15`` (SD 1.x and fine-tunes), ``sdxl``; ``sd2`` is recognised so it can be refused
clearly where we have no configs for it (single files), yet a diffusers sd2 folder (sd-turbo)
still loads. Variants: ``base``, ``inpaint``, ``turbo``, ``lcm``. A file name may only add a
turbo/lcm hint; it never decides the family (plenty of "sdxl-something.safetensors" are SD 1.5).
"""

from __future__ import annotations

import json
import struct
from dataclasses import dataclass
from pathlib import Path

from ..errors import ModelError, ModelNotFoundError

MAX_HEADER = 100 * 1024 * 1024  # a safetensors header beyond this is corruption, not a model


class CorruptModelError(ModelError):
    """A model file exists but cannot be used: truncated, not safetensors, broken JSON header."""


class UnsupportedModelError(ModelError):
    """A real model of a family Brushwork does not load (SD 2.x single files, refiners...)."""


@dataclass(frozen=True)
class FamilyInfo:
    family: str | None  # "sd15", "sdxl", "sd2" or None (cannot tell, e.g. a VAE)
    variant: str = "base"


@dataclass
class SafetensorsHeader:
    shapes: dict[str, list[int]]
    dtypes: dict[str, str]
    metadata: dict[str, str]
    data_size: int  # bytes of tensor data the header promises


def read_safetensors_header(path: Path) -> SafetensorsHeader:
    """Parse and sanity-check a .safetensors header without torch (reads only the header)."""
    path = Path(path)
    try:
        size = path.stat().st_size
        with path.open("rb") as fh:
            head = fh.read(8)
            if len(head) < 8:
                raise CorruptModelError(f"{path.name}: not a safetensors file (only {size} bytes)")
            (n,) = struct.unpack("<Q", head)
            if n <= 1 or n > MAX_HEADER or 8 + n > size:
                raise CorruptModelError(f"{path.name}: not a safetensors file or truncated (bad header length)")
            raw = fh.read(n)
    except OSError as exc:
        raise ModelNotFoundError(f"{path}: cannot read ({exc.strerror or exc})") from None
    try:
        header = json.loads(raw.decode("utf-8"))
        if not isinstance(header, dict):
            raise ValueError("header is not an object")
    except (UnicodeDecodeError, ValueError) as exc:
        raise CorruptModelError(f"{path.name}: corrupt safetensors header ({exc})") from None
    metadata = header.pop("__metadata__", None) or {}
    shapes, dtypes, end = {}, {}, 0
    try:
        for key, info in header.items():
            shapes[key] = list(info["shape"])
            dtypes[key] = str(info["dtype"])
            end = max(end, int(info["data_offsets"][1]))
    except (TypeError, KeyError, IndexError, ValueError):
        raise CorruptModelError(f"{path.name}: corrupt safetensors header (bad tensor entry)") from None
    if 8 + n + end > size:
        raise CorruptModelError(
            f"{path.name}: truncated ({size} bytes, the header promises {8 + n + end}); download it again")
    return SafetensorsHeader(shapes, dtypes, {str(k): str(v) for k, v in metadata.items()}, end)


def variant_hint(name: str) -> str | None:
    """Turbo/LCM from a name: the only thing a name may tell us (their weights look like base)."""
    low = name.lower()
    if "turbo" in low:
        return "turbo"
    if "lcm" in low or "latent-consistency" in low:
        return "lcm"
    return None


def _with_hint(info: FamilyInfo, name: str) -> FamilyInfo:
    hint = variant_hint(name)
    if hint and info.variant == "base":
        return FamilyInfo(info.family, hint)
    return info


def _read_json(path: Path) -> dict:
    try:
        data = json.loads(path.read_text("utf-8"))
    except (OSError, UnicodeDecodeError, ValueError) as exc:
        raise CorruptModelError(f"{path}: unreadable config ({exc})") from None
    if not isinstance(data, dict):
        raise CorruptModelError(f"{path}: config is not a JSON object")
    return data


def family_from_unet_config(cfg: dict) -> str:
    if cfg.get("addition_embed_type") == "text_time":
        return "sdxl"
    if cfg.get("cross_attention_dim") == 1024:
        return "sd2"
    return "sd15"


def detect_folder(folder: Path) -> FamilyInfo:
    """A diffusers folder: a pipeline (model_index.json), a ControlNet/UNet or a VAE."""
    folder = Path(folder)
    index = folder / "model_index.json"
    if index.exists():
        model_index = _read_json(index)
        unet_cfg_path = folder / "unet" / "config.json"
        if unet_cfg_path.exists():
            unet_cfg = _read_json(unet_cfg_path)
            family: str | None = family_from_unet_config(unet_cfg)
            variant = "inpaint" if unet_cfg.get("in_channels") == 9 else "base"
        else:  # transformer-based or odd pipelines: the class name is all we have
            cls = str(model_index.get("_class_name", ""))
            family = "sdxl" if "XL" in cls else ("sd15" if cls.startswith("StableDiffusion") else None)
            variant = "base"
        scheduler = model_index.get("scheduler") or [None, None]
        if variant == "base" and isinstance(scheduler, list) and "LCM" in str(scheduler[-1]):
            variant = "lcm"
        return _with_hint(FamilyInfo(family, variant), folder.name)
    config = folder / "config.json"
    if config.exists():
        cfg = _read_json(config)
        cls = str(cfg.get("_class_name", ""))
        if cls.startswith("AutoencoderKL"):
            factor = cfg.get("scaling_factor")
            family = {0.13025: "sdxl", 0.18215: "sd15"}.get(factor) if isinstance(factor, float) else None
            return FamilyInfo(family)
        if "cross_attention_dim" in cfg:  # ControlNetModel, UNet2DConditionModel
            variant = "inpaint" if cfg.get("in_channels") == 9 else "base"
            return _with_hint(FamilyInfo(family_from_unet_config(cfg), variant), folder.name)
    raise ModelNotFoundError(f"{folder}: not a diffusers model folder (no model_index.json or config.json)")


def detect_checkpoint_keys(shapes: dict[str, list[int]], metadata: dict[str, str] | None = None,
                           name: str = "") -> FamilyInfo:
    """A single-file checkpoint (original LDM/A1111 layout) from its tensor names and shapes."""
    metadata = metadata or {}

    def has(prefix: str) -> bool:
        return any(k.startswith(prefix) for k in shapes)

    family: str | None
    if has("conditioner.embedders.1."):
        family = "sdxl"
    elif has("conditioner.embedders.0.model."):
        raise UnsupportedModelError(
            f"{name or 'checkpoint'}: an SDXL refiner; Brushwork loads SDXL base models, not the refiner")
    elif has("cond_stage_model.model."):
        raise UnsupportedModelError(
            f"{name or 'checkpoint'}: an SD 2.x checkpoint (OpenCLIP text encoder); SD 2.x is not supported, "
            "use an SD 1.5 or SDXL model")
    elif has("cond_stage_model.transformer."):
        family = "sd15"
    elif has("model.diffusion_model."):
        family = _family_from_unet_shapes(shapes)
        if family == "sd2":
            raise UnsupportedModelError(f"{name or 'checkpoint'}: an SD 2.x UNet; SD 2.x is not supported")
    else:
        family = _family_from_modelspec(metadata)
        if family is None:
            raise UnsupportedModelError(
                f"{name or 'checkpoint'}: not a Stable Diffusion checkpoint (no UNet/text encoder weights found); "
                "is it a LoRA, VAE or embedding?")
    conv_in = shapes.get("model.diffusion_model.input_blocks.0.0.weight")
    variant = "inpaint" if conv_in and len(conv_in) == 4 and conv_in[1] == 9 else "base"
    return _with_hint(FamilyInfo(family, variant), name)


def _family_from_unet_shapes(shapes: dict[str, list[int]]) -> str:
    if any(k.startswith("model.diffusion_model.label_emb.") for k in shapes):
        return "sdxl"
    for key, shape in shapes.items():
        if key.endswith("attn2.to_k.weight") and len(shape) == 2:
            return {1024: "sd2", 2048: "sdxl"}.get(shape[1], "sd15")
    return "sd15"


def _family_from_modelspec(metadata: dict[str, str]) -> str | None:
    arch = metadata.get("modelspec.architecture", "").lower()
    if not arch:
        return None
    if "stable-diffusion-xl" in arch:
        return "sdxl"
    if "stable-diffusion-v2" in arch:
        return "sd2"
    if "stable-diffusion-v1" in arch:
        return "sd15"
    return None


def detect_lora_family(shapes: dict[str, list[int]], metadata: dict[str, str] | None = None) -> str | None:
    """LoRA / embedding files: best effort (None when the file does not say)."""
    metadata = metadata or {}
    keys = list(shapes)
    if any(k.startswith(("lora_te2_", "text_encoder_2.", "te2.")) for k in keys):
        return "sdxl"
    if "clip_g" in shapes or "clip_l" in shapes:  # SDXL textual inversion
        return "sdxl"
    from_spec = _family_from_modelspec(metadata)
    if from_spec:
        return from_spec
    for key, shape in shapes.items():  # a LoRA on cross-attention: its input is the text width
        if "attn2" in key and "to_k" in key and ("lora_A" in key or "lora_down" in key) and len(shape) == 2:
            found = {768: "sd15", 1024: "sd2", 2048: "sdxl"}.get(shape[1])
            if found:
                return found
    base = metadata.get("ss_base_model_version", "").lower()
    if base.startswith("sdxl"):
        return "sdxl"
    if base.startswith("sd_v1") or base.startswith("sd_1"):
        return "sd15"
    return None


def detect_file(path: Path) -> FamilyInfo:
    """A single .safetensors checkpoint: header only, no tensors loaded."""
    header = read_safetensors_header(path)
    return detect_checkpoint_keys(header.shapes, header.metadata, Path(path).name)


def classify_keys(shapes: dict[str, list[int]]) -> str | None:
    """What kind of model a safetensors file holds, from its tensor names (None: cannot tell)."""
    keys = list(shapes)

    def any_has(*parts: str) -> bool:
        return any(p in k for k in keys for p in parts)

    if any_has("lora_down", "lora_up", "lora_A", "lora_B", "lora_unet_", "lora_te", ".hada_w1", ".lokr_w1"):
        return "lora"
    if any(k.startswith(("control_model.", "controlnet_cond_embedding.", "input_hint_block.")) for k in keys):
        return "controlnet"
    if any(k.startswith(("model.diffusion_model.", "cond_stage_model.", "conditioner.")) for k in keys):
        return "pipeline"
    if any(k.startswith(("encoder.", "first_stage_model.encoder.")) for k in keys) and any_has("decoder."):
        return "vae"
    if keys and len(keys) <= 4 and all(len(s) == 2 for s in shapes.values()):
        return "embedding"  # A1111 (emb_params), diffusers (<token>) or SDXL (clip_l + clip_g)
    return None
