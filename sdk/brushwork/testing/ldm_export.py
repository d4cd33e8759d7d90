"""Write a diffusers SD 1.5 pipeline folder as ONE checkpoint in the original LDM (A1111) key layout.

Why: users' ``.safetensors`` checkpoints from A1111/Civitai use the original CompVis key names
(``model.diffusion_model.input_blocks.1.0.in_layers.0.weight`` ...). To test our single-file loader
honestly, the tiny single file must be in that layout, so the loader really converts it. diffusers
only converts LDM -> diffusers; this is the reverse direction, written for any number of blocks and
any ``layers_per_block`` (the public conversion script assumes the 4-block SD 1.5 shape).
"""

from __future__ import annotations

import json
import re
from pathlib import Path

UNET_PREFIX = "model.diffusion_model."
VAE_PREFIX = "first_stage_model."
TEXT_PREFIX = "cond_stage_model.transformer."

_UNET_TOP = {
    "time_embedding.linear_1.": "time_embed.0.",
    "time_embedding.linear_2.": "time_embed.2.",
    "add_embedding.linear_1.": "label_emb.0.0.",
    "add_embedding.linear_2.": "label_emb.0.2.",
    "conv_in.": "input_blocks.0.0.",
    "conv_norm_out.": "out.0.",
    "conv_out.": "out.2.",
}
_UNET_RESNET = {
    "norm1.": "in_layers.0.", "conv1.": "in_layers.2.", "norm2.": "out_layers.0.",
    "conv2.": "out_layers.3.", "time_emb_proj.": "emb_layers.1.", "conv_shortcut.": "skip_connection.",
}
_VAE_ATTN = {"group_norm.": "norm.", "to_q.": "q.", "to_k.": "k.", "to_v.": "v.", "to_out.0.": "proj_out."}


def _resnet(rest: str, table: dict[str, str]) -> str:
    for old, new in table.items():
        if rest.startswith(old):
            return new + rest[len(old):]
    return rest


def unet_key(key: str, layers_per_block: int, up_has_attention: list[bool]) -> str:
    """One diffusers UNet key -> its LDM name (without the ``model.diffusion_model.`` prefix)."""
    per = layers_per_block + 1  # LDM gives each level its resnets plus one down/up-sampler slot
    for old, new in _UNET_TOP.items():
        if key.startswith(old):
            return new + key[len(old):]
    if m := re.match(r"down_blocks\.(\d+)\.(resnets|attentions)\.(\d+)\.(.*)", key):
        i, part, j, rest = int(m[1]), m[2], int(m[3]), m[4]
        slot = 0 if part == "resnets" else 1
        rest = _resnet(rest, _UNET_RESNET) if part == "resnets" else rest
        return f"input_blocks.{per * i + j + 1}.{slot}.{rest}"
    if m := re.match(r"down_blocks\.(\d+)\.downsamplers\.0\.conv\.(.*)", key):
        return f"input_blocks.{per * (int(m[1]) + 1)}.0.op.{m[2]}"
    if m := re.match(r"up_blocks\.(\d+)\.(resnets|attentions)\.(\d+)\.(.*)", key):
        i, part, j, rest = int(m[1]), m[2], int(m[3]), m[4]
        slot = 0 if part == "resnets" else 1
        rest = _resnet(rest, _UNET_RESNET) if part == "resnets" else rest
        return f"output_blocks.{per * i + j}.{slot}.{rest}"
    if m := re.match(r"up_blocks\.(\d+)\.upsamplers\.0\.(.*)", key):
        i = int(m[1])
        slot = 2 if up_has_attention[i] else 1
        return f"output_blocks.{per * i + layers_per_block}.{slot}.{m[2]}"
    if m := re.match(r"mid_block\.resnets\.(\d+)\.(.*)", key):
        return f"middle_block.{2 * int(m[1])}.{_resnet(m[2], _UNET_RESNET)}"
    if m := re.match(r"mid_block\.attentions\.0\.(.*)", key):
        return f"middle_block.1.{m[1]}"
    raise ValueError(f"no LDM name for UNet key {key!r}")


def vae_key(key: str, num_blocks: int) -> str:
    """One diffusers AutoencoderKL key -> its LDM name (without ``first_stage_model.``)."""
    if m := re.match(r"(encoder|decoder)\.(.*)", key):
        side, rest = m[1], m[2]
        if m2 := re.match(r"down_blocks\.(\d+)\.resnets\.(\d+)\.(.*)", rest):
            rest = f"down.{m2[1]}.block.{m2[2]}.{m2[3]}"
        elif m2 := re.match(r"down_blocks\.(\d+)\.downsamplers\.0\.(.*)", rest):
            rest = f"down.{m2[1]}.downsample.{m2[2]}"
        elif m2 := re.match(r"up_blocks\.(\d+)\.resnets\.(\d+)\.(.*)", rest):
            rest = f"up.{num_blocks - 1 - int(m2[1])}.block.{m2[2]}.{m2[3]}"
        elif m2 := re.match(r"up_blocks\.(\d+)\.upsamplers\.0\.(.*)", rest):
            rest = f"up.{num_blocks - 1 - int(m2[1])}.upsample.{m2[2]}"
        elif m2 := re.match(r"mid_block\.resnets\.(\d+)\.(.*)", rest):
            rest = f"mid.block_{int(m2[1]) + 1}.{m2[2]}"
        elif m2 := re.match(r"mid_block\.attentions\.0\.(.*)", rest):
            rest = "mid.attn_1." + _resnet(m2[1], _VAE_ATTN)
        elif rest.startswith("conv_norm_out."):
            rest = "norm_out." + rest[len("conv_norm_out."):]
        rest = rest.replace("conv_shortcut.", "nin_shortcut.")
        return f"{side}.{rest}"
    return key  # quant_conv / post_quant_conv keep their names


def unet_to_ldm(state: dict, config: dict) -> dict:
    up_attn = ["CrossAttn" in t for t in config["up_block_types"]]
    lpb = config["layers_per_block"]
    return {UNET_PREFIX + unet_key(k, lpb, up_attn): v for k, v in state.items()}


def vae_to_ldm(state: dict, config: dict) -> dict:
    n = len(config["block_out_channels"])
    out = {}
    for k, v in state.items():
        name = vae_key(k, n)
        # LDM's mid attention uses 1x1 convolutions where diffusers uses linear layers.
        if ".mid.attn_1." in f".{name}" and name.endswith(".weight") and v.ndim == 2:
            v = v[:, :, None, None]
        out[VAE_PREFIX + name] = v
    return out


def text_encoder_to_ldm(state: dict) -> dict:
    # Real checkpoints name CLIP's weights ``...transformer.text_model.<x>``; transformers 5 saves
    # them without the ``text_model.`` wrapper, so put it back.
    out = {}
    for k, v in state.items():
        if k.endswith("position_ids"):
            continue
        out[TEXT_PREFIX + (k if k.startswith("text_model.") else "text_model." + k)] = v
    return out


def export_sd15_single_file(pipeline_dir: Path, out_file: Path, *, metadata: dict | None = None) -> Path:
    """Read a saved SD 1.5-family diffusers folder and write it as one LDM-layout ``.safetensors``."""
    from safetensors.torch import load_file, save_file

    pipeline_dir = Path(pipeline_dir)

    def part(name: str) -> tuple[dict, dict]:
        folder = pipeline_dir / name
        weights = sorted(folder.glob("*.safetensors"))
        if len(weights) != 1:
            raise ValueError(f"{folder}: expected one .safetensors weight file, found {len(weights)}")
        return load_file(str(weights[0])), json.loads((folder / "config.json").read_text("utf-8"))

    unet, unet_cfg = part("unet")
    vae, vae_cfg = part("vae")
    text, _ = part("text_encoder")
    checkpoint = {**unet_to_ldm(unet, unet_cfg), **vae_to_ldm(vae, vae_cfg), **text_encoder_to_ldm(text)}
    checkpoint = {k: v.contiguous() for k, v in checkpoint.items()}
    out_file = Path(out_file)
    out_file.parent.mkdir(parents=True, exist_ok=True)
    tmp = out_file.with_name(out_file.name + ".partial")
    save_file(checkpoint, str(tmp), metadata=metadata or {})
    tmp.replace(out_file)
    return out_file


def _load_component(folder: Path) -> tuple[dict, dict]:
    from safetensors.torch import load_file

    weights = sorted(Path(folder).glob("*.safetensors"))
    if len(weights) != 1:
        raise ValueError(f"{folder}: expected one .safetensors weight file, found {len(weights)}")
    return load_file(str(weights[0])), json.loads((Path(folder) / "config.json").read_text("utf-8"))


def _save(tensors: dict, out_file: Path) -> Path:
    from safetensors.torch import save_file

    out_file = Path(out_file)
    out_file.parent.mkdir(parents=True, exist_ok=True)
    tmp = out_file.with_name(out_file.name + ".partial")
    save_file({k: v.contiguous() for k, v in tensors.items()}, str(tmp))
    tmp.replace(out_file)
    return out_file


def export_vae_single_file(vae_dir: Path, out_file: Path) -> Path:
    """A standalone VAE as A1111 ships them (``vae-ft-mse-...safetensors``: LDM keys, no prefix)."""
    state, cfg = _load_component(vae_dir)
    return _save({k[len(VAE_PREFIX):]: v for k, v in vae_to_ldm(state, cfg).items()}, out_file)


def controlnet_key(key: str, layers_per_block: int, hint_blocks: int) -> str:
    """One diffusers ControlNetModel key -> its LDM name (without ``control_model.``)."""
    if m := re.match(r"controlnet_cond_embedding\.conv_in\.(.*)", key):
        return f"input_hint_block.0.{m[1]}"
    if m := re.match(r"controlnet_cond_embedding\.blocks\.(\d+)\.(.*)", key):
        return f"input_hint_block.{2 * (int(m[1]) + 1)}.{m[2]}"
    if m := re.match(r"controlnet_cond_embedding\.conv_out\.(.*)", key):
        return f"input_hint_block.{2 * (hint_blocks + 1)}.{m[1]}"
    if m := re.match(r"controlnet_down_blocks\.(\d+)\.(.*)", key):
        return f"zero_convs.{m[1]}.0.{m[2]}"
    if m := re.match(r"controlnet_mid_block\.(.*)", key):
        return f"middle_block_out.0.{m[1]}"
    return unet_key(key, layers_per_block, [])


def export_controlnet_single_file(controlnet_dir: Path, out_file: Path) -> Path:
    """A ControlNet as A1111's extension ships them (``control_model.`` keys). Note: diffusers'
    converter expects the standard 4-stage hint encoder (conditioning channels of length 4)."""
    state, cfg = _load_component(controlnet_dir)
    hint_blocks = len({k.split(".")[2] for k in state if k.startswith("controlnet_cond_embedding.blocks.")})
    lpb = cfg["layers_per_block"]
    return _save({"control_model." + controlnet_key(k, lpb, hint_blocks): v for k, v in state.items()}, out_file)


SDXL_TEXT_PREFIX = "conditioner.embedders.0.transformer."
SDXL_OPEN_CLIP_PREFIX = "conditioner.embedders.1.model."


def open_clip_to_ldm(state: dict) -> dict:
    """CLIPTextModelWithProjection -> OpenCLIP names (SDXL's second text encoder), q/k/v fused."""
    import torch

    s = {(k if k.startswith(("text_model.", "text_projection")) else "text_model." + k): v
         for k, v in state.items() if not k.endswith("position_ids")}
    out = {
        "token_embedding.weight": s["text_model.embeddings.token_embedding.weight"],
        "positional_embedding": s["text_model.embeddings.position_embedding.weight"],
        "ln_final.weight": s["text_model.final_layer_norm.weight"],
        "ln_final.bias": s["text_model.final_layer_norm.bias"],
        "text_projection": s["text_projection.weight"].T,
    }
    layers = sorted({int(k.split(".")[3]) for k in s if k.startswith("text_model.encoder.layers.")})
    rename = {"layer_norm1": "ln_1", "layer_norm2": "ln_2", "mlp.fc1": "mlp.c_fc", "mlp.fc2": "mlp.c_proj",
              "self_attn.out_proj": "attn.out_proj"}
    for i in layers:
        src, dst = f"text_model.encoder.layers.{i}.", f"transformer.resblocks.{i}."
        for part in ("weight", "bias"):
            out[f"{dst}attn.in_proj_{part}"] = torch.cat(
                [s[f"{src}self_attn.{p}_proj.{part}"] for p in ("q", "k", "v")], dim=0)
            for old, new in rename.items():
                out[f"{dst}{new}.{part}"] = s[f"{src}{old}.{part}"]
    return {SDXL_OPEN_CLIP_PREFIX + k: v for k, v in out.items()}


def export_sdxl_single_file(pipeline_dir: Path, out_file: Path) -> Path:
    """A saved SDXL diffusers folder as one checkpoint in the original SGM (A1111/Civitai) layout."""
    pipeline_dir = Path(pipeline_dir)
    unet, unet_cfg = _load_component(pipeline_dir / "unet")
    vae, vae_cfg = _load_component(pipeline_dir / "vae")
    te1, _ = _load_component(pipeline_dir / "text_encoder")
    te2, _ = _load_component(pipeline_dir / "text_encoder_2")
    text = {SDXL_TEXT_PREFIX + k[len(TEXT_PREFIX):]: v for k, v in text_encoder_to_ldm(te1).items()}
    return _save({**unet_to_ldm(unet, unet_cfg), **vae_to_ldm(vae, vae_cfg), **text, **open_clip_to_ldm(te2)},
                 out_file)
