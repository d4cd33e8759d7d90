"""Diffusers configs for a single-file checkpoint, derived from its tensor shapes (stdlib only).

Why: ``from_single_file`` needs a diffusers-layout config folder to run offline. The shipped
folders (configs/sd15, configs/sdxl) fit real SD 1.5 / SDXL; fine-tunes with other shapes (and our
tiny test models) would not load with them. So every config field the weights determine is read
from the shapes, on top of the shipped config of the family. Fields the weights cannot tell (the
number of attention heads, group-norm groups) keep the family's values, with a rule for small widths.
The folder is written once per distinct config under the state dir and reused.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import shutil
from pathlib import Path

from .. import paths
from .family import UnsupportedModelError

CONFIGS = Path(__file__).resolve().parent / "configs"
TOKENIZER = CONFIGS / "clip-tokenizer"
UNET_LDM = "model.diffusion_model."
VAE_LDM = "first_stage_model."
TEXT_LDM = {"sd15": "cond_stage_model.transformer.text_model.",
            "sdxl": "conditioner.embedders.0.transformer.text_model."}
OPEN_CLIP_LDM = "conditioner.embedders.1.model."
_KNOWN_HEADS = {768: 12, 1024: 16, 1280: 20}


def shipped(folder: str, part: str, name: str = "config.json") -> dict:
    return json.loads((CONFIGS / folder / part / name).read_text("utf-8"))


def _indices(shapes: dict, pattern: str) -> list[int]:
    rx = re.compile(pattern)
    return sorted({int(m[1]) for k in shapes if (m := rx.match(k))})


def _groups(channels: int, default: int) -> int:
    """Group-norm groups: the family's value when it divides the width, else the largest that does."""
    for g in range(min(default, channels), 0, -1):
        if channels % g == 0:
            return g
    return 1


def _heads(width: int) -> int:
    """CLIP's head count is not in its weights: real widths use 64-wide heads, small test widths 8."""
    if width in _KNOWN_HEADS:
        return _KNOWN_HEADS[width]
    return width // 64 if width >= 512 and width % 64 == 0 else max(1, width // 8)


def unet_config(shapes: dict, family: str, prefix: str = UNET_LDM, base: dict | None = None) -> dict:
    """UNet2DConditionModel config from LDM UNet (or ControlNet: prefix control_model.) shapes."""
    cfg = dict(base if base is not None else shipped(family, "unet"))
    s = {k[len(prefix):]: v for k, v in shapes.items() if k.startswith(prefix)}
    if "input_blocks.0.0.weight" not in s:
        raise UnsupportedModelError("checkpoint has no UNet weights")
    cfg["in_channels"] = s["input_blocks.0.0.weight"][1]
    if "out.2.weight" in s:
        cfg["out_channels"] = s["out.2.weight"][0]
    blocks = _indices(s, r"input_blocks\.(\d+)\.")
    levels: list[list[int]] = [[]]
    for i in blocks[1:]:
        if f"input_blocks.{i}.0.op.weight" in s:
            levels.append([])
        else:
            levels[-1].append(i)
    lpb = len(levels[0])
    channels = [s[f"input_blocks.{lv[0]}.0.out_layers.3.weight"][0] for lv in levels]
    attn = [f"input_blocks.{lv[0]}.1.proj_in.weight" in s for lv in levels]
    tlayers = [len(_indices(s, rf"input_blocks\.{lv[0]}\.1\.transformer_blocks\.(\d+)\.")) or 1 for lv in levels]
    cfg["layers_per_block"] = lpb
    cfg["block_out_channels"] = channels
    cfg["down_block_types"] = ["CrossAttnDownBlock2D" if a else "DownBlock2D" for a in attn]
    if "up_block_types" in cfg:
        cfg["up_block_types"] = ["CrossAttnUpBlock2D" if a else "UpBlock2D" for a in reversed(attn)]
    if any(t != 1 for t in tlayers) or "transformer_layers_per_block" in cfg:
        cfg["transformer_layers_per_block"] = tlayers
    for key, shape in s.items():
        if key.endswith("attn2.to_k.weight"):
            cfg["cross_attention_dim"] = shape[1]
            break
    proj = next((v for k, v in s.items() if k.endswith(".proj_in.weight")), None)
    if proj is not None:
        cfg["use_linear_projection"] = len(proj) == 2
    cfg["norm_num_groups"] = _groups(channels[0], 32)
    if family == "sdxl":
        # SDXL uses 64-wide heads; the weights cannot tell, and small (test) widths use 16-wide ones.
        cfg["attention_head_dim"] = [c // 64 if c >= 320 else max(1, c // 16) for c in channels]
    if "label_emb.0.0.weight" in s:
        cfg["addition_embed_type"] = "text_time"
        cfg["projection_class_embeddings_input_dim"] = s["label_emb.0.0.weight"][1]
    return cfg


def vae_config(shapes: dict, family: str, prefix: str = VAE_LDM) -> dict:
    cfg = shipped(family, "vae")
    s = {k[len(prefix):]: v for k, v in shapes.items() if k.startswith(prefix)}
    if "encoder.conv_in.weight" not in s:
        raise UnsupportedModelError("checkpoint has no VAE weights")
    levels = _indices(s, r"encoder\.down\.(\d+)\.")
    channels = [s[f"encoder.down.{i}.block.0.conv1.weight"][0] for i in levels]
    n = len(channels)
    cfg["block_out_channels"] = channels
    cfg["down_block_types"] = ["DownEncoderBlock2D"] * n
    cfg["up_block_types"] = ["UpDecoderBlock2D"] * n
    cfg["layers_per_block"] = len(_indices(s, r"encoder\.down\.0\.block\.(\d+)\."))
    cfg["in_channels"] = s["encoder.conv_in.weight"][1]
    cfg["out_channels"] = s["decoder.conv_out.weight"][0]
    cfg["latent_channels"] = s["decoder.conv_in.weight"][1]
    cfg["norm_num_groups"] = _groups(channels[0], 32)
    return cfg


def clip_config(shapes: dict, family: str, part: str, prefix: str) -> dict:
    cfg = shipped(family, part)
    s = {k[len(prefix):]: v for k, v in shapes.items() if k.startswith(prefix)}
    if "embeddings.token_embedding.weight" not in s:
        raise UnsupportedModelError("checkpoint has no CLIP text encoder weights")
    cfg["vocab_size"], width = s["embeddings.token_embedding.weight"]
    cfg["hidden_size"] = width
    cfg["max_position_embeddings"] = s["embeddings.position_embedding.weight"][0]
    cfg["num_hidden_layers"] = len(_indices(s, r"encoder\.layers\.(\d+)\."))
    cfg["intermediate_size"] = s["encoder.layers.0.mlp.fc1.weight"][0]
    cfg["num_attention_heads"] = _heads(width)
    if "text_projection.weight" in s:
        cfg["projection_dim"] = s["text_projection.weight"][0]
    return cfg


def open_clip_config(shapes: dict, prefix: str = OPEN_CLIP_LDM) -> dict:
    cfg = shipped("sdxl", "text_encoder_2")
    s = {k[len(prefix):]: v for k, v in shapes.items() if k.startswith(prefix)}
    if "token_embedding.weight" not in s:
        raise UnsupportedModelError("checkpoint has no OpenCLIP text encoder weights")
    cfg["vocab_size"], width = s["token_embedding.weight"]
    cfg["hidden_size"] = width
    cfg["max_position_embeddings"] = s["positional_embedding"][0]
    cfg["num_hidden_layers"] = len(_indices(s, r"transformer\.resblocks\.(\d+)\."))
    cfg["intermediate_size"] = s["transformer.resblocks.0.mlp.c_fc.weight"][0]
    cfg["num_attention_heads"] = _heads(width)
    if "text_projection" in s:
        cfg["projection_dim"] = s["text_projection"][1]
    return cfg


def pipeline_configs(shapes: dict, family: str) -> dict[str, dict]:
    """{component: config} for every model component of a single-file pipeline checkpoint."""
    if family not in ("sd15", "sdxl"):
        raise UnsupportedModelError(f"no single-file configs for {family} models")
    out = {"unet": unet_config(shapes, family), "vae": vae_config(shapes, family),
           "text_encoder": clip_config(shapes, family, "text_encoder", TEXT_LDM[family])}
    if family == "sdxl":
        te2 = open_clip_config(shapes)
        out["text_encoder_2"] = te2
        unet = out["unet"]
        in_dim = unet.get("projection_class_embeddings_input_dim")
        if in_dim:  # SDXL: 6 size/crop ids, each embedded, plus the pooled text embedding
            unet["addition_time_embed_dim"] = (in_dim - te2["projection_dim"]) // 6
    return out


def controlnet_config(shapes: dict, family: str) -> dict:
    """ControlNetModel config from an LDM ControlNet (``control_model.`` keys)."""
    base = json.loads((CONFIGS / f"controlnet-{family}" / "config.json").read_text("utf-8"))
    prefix = "control_model." if any(k.startswith("control_model.") for k in shapes) else ""
    cfg = unet_config(shapes, family, prefix=prefix, base=base)
    cfg.pop("up_block_types", None)
    cfg.pop("out_channels", None)
    convs = sorted(_indices(shapes, rf"{re.escape(prefix)}input_hint_block\.(\d+)\.weight"))
    outs = [shapes[f"{prefix}input_hint_block.{i}.weight"][0] for i in convs[:-1]]
    channels = [c for i, c in enumerate(outs) if i == 0 or c != outs[i - 1]]
    if channels:
        cfg["conditioning_embedding_out_channels"] = channels
    return cfg


def _write_once(kind: str, files: dict[str, dict], copy: dict[str, Path]) -> Path:
    """A config folder under the state dir named by its content: written once, then reused."""
    digest = hashlib.sha256(json.dumps(files, sort_keys=True).encode()).hexdigest()[:16]
    folder = paths.state_dir() / "model-configs" / f"{kind}-{digest}"
    if (folder / ".complete").exists():
        return folder
    tmp = folder.with_name(f"{folder.name}.partial-{os.getpid()}")
    shutil.rmtree(tmp, ignore_errors=True)
    for rel, data in files.items():
        (tmp / rel).parent.mkdir(parents=True, exist_ok=True)
        (tmp / rel).write_text(json.dumps(data, indent=2), "utf-8")
    for rel, src in copy.items():
        (tmp / rel).parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(src, tmp / rel)
    (tmp / ".complete").write_text("ok")
    try:
        tmp.rename(folder)
    except OSError:  # another process wrote the same folder first: theirs is identical
        shutil.rmtree(tmp, ignore_errors=True)
    return folder


def _tokenizer_files(rel: str, pad_token: str | None) -> tuple[dict[str, dict], dict[str, Path]]:
    config = json.loads((TOKENIZER / "tokenizer_config.json").read_text("utf-8"))
    special = json.loads((TOKENIZER / "special_tokens_map.json").read_text("utf-8"))
    if pad_token is not None:  # SDXL's second tokenizer (OpenCLIP) pads with "!"
        config["pad_token"] = special["pad_token"] = pad_token
    files = {f"{rel}/tokenizer_config.json": config, f"{rel}/special_tokens_map.json": special}
    return files, {f"{rel}/vocab.json": TOKENIZER / "vocab.json", f"{rel}/merges.txt": TOKENIZER / "merges.txt"}


def pipeline_config_folder(shapes: dict, family: str) -> Path:
    """A diffusers-layout folder ``from_single_file(config=...)`` can use with no network."""
    comps = pipeline_configs(shapes, family)
    files = {"model_index.json": json.loads((CONFIGS / family / "model_index.json").read_text("utf-8")),
             "scheduler/scheduler_config.json": shipped(family, "scheduler", "scheduler_config.json")}
    files.update({f"{name}/config.json": cfg for name, cfg in comps.items()})
    tok_files, copy = _tokenizer_files("tokenizer", None)
    files.update(tok_files)
    if family == "sdxl":
        tok_files, copy2 = _tokenizer_files("tokenizer_2", "!")
        files.update(tok_files)
        copy.update(copy2)
    return _write_once(family, files, copy)


def component_config_folder(kind: str, cfg: dict) -> Path:
    return _write_once(kind, {"config.json": cfg}, {})
