"""Tiny random IP-Adapters for the tiny SD 1.5 / SDXL models of ``testing/tiny.py``.

An IP-Adapter is two files' worth of parts, laid out as h94/IP-Adapter ships them:

    <folder>/ip-adapter_<name>.safetensors   image_proj.* (image embedding -> 4 extra tokens)
                                             ip_adapter.<k>.to_k_ip/to_v_ip.weight (one pair per
                                             cross-attention layer, k = 1, 3, 5, ... in the UNet's
                                             attention-processor order: what diffusers reads)
    <folder>/image_encoder/                  a CLIPVisionModelWithProjection (save_pretrained)

The shapes come from the UNet the adapter is for (its cross-attention width and the channels of
each block), so ``pipe.load_ip_adapter(folder, subfolder="", weight_name=...)`` loads them through
diffusers' real code. Weights are random and large enough that a reference visibly changes a
picture. ``python -m brushwork.testing.tiny_ip_adapter TINY_ROOT`` writes them beside a tiny set.
"""

from __future__ import annotations

import json
import shutil
import sys
from pathlib import Path

# Names in a model folder (``<root>/ipadapter/<name>``: ComfyUI's folder for them).
FOLDER = "ipadapter"
SD15_ADAPTER = "ip-adapter-tiny-sd15"
SD15_ADAPTER_B = "ip-adapter-tiny-sd15-b"  # another adapter, the same image encoder (two at once)
SDXL_ADAPTER = "ip-adapter-tiny-sdxl"
WEIGHT_NAME = "ip-adapter_tiny.safetensors"
ENCODER_FOLDER = "image_encoder"

# A ViT small enough for CPU tests; two layers so the "plus" adapters' hidden_states[-2] exists.
IMAGE_ENCODER = dict(hidden_size=32, intermediate_size=37, projection_dim=32, num_hidden_layers=2,
                     num_attention_heads=4, image_size=32, patch_size=8, num_channels=3)
NUM_TOKENS = 4  # what diffusers assumes for a plain IP-Adapter (proj.weight rows = 4 x cross dim)


def build_tiny_image_encoder(out_dir: Path, *, seed: int = 200, **overrides) -> Path:
    """A CLIPVisionModelWithProjection folder (config.json + model.safetensors)."""
    import torch
    from transformers import CLIPVisionConfig, CLIPVisionModelWithProjection

    torch.manual_seed(seed)
    model = CLIPVisionModelWithProjection(CLIPVisionConfig(**{**IMAGE_ENCODER, **overrides})).eval()
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    model.save_pretrained(str(out_dir), safe_serialization=True)
    return out_dir


def adapter_state_dict(unet_config: dict, attn_processor_names: list[str], *, embed_dim: int,
                       seed: int = 300, scale: float = 0.5) -> dict:
    """The IP-Adapter tensors (flat ``image_proj.*`` / ``ip_adapter.*`` keys) for a UNet with this
    config whose attention processors are named (in order) ``attn_processor_names``."""
    import torch

    gen = torch.Generator().manual_seed(seed)
    cross = int(unet_config["cross_attention_dim"])
    channels = list(unet_config["block_out_channels"])

    def rand(*shape):
        return torch.randn(*shape, generator=gen) * scale

    tensors = {
        "image_proj.proj.weight": rand(NUM_TOKENS * cross, embed_dim),
        "image_proj.proj.bias": rand(NUM_TOKENS * cross),
        "image_proj.norm.weight": 1.0 + rand(cross) * 0.1,
        "image_proj.norm.bias": rand(cross) * 0.1,
    }
    key_id = 1
    for name in attn_processor_names:  # diffusers' own walk (loaders/unet.py)
        if name.endswith("attn1.processor"):
            continue
        if name.startswith("mid_block"):
            hidden = channels[-1]
        elif name.startswith("up_blocks"):
            hidden = list(reversed(channels))[int(name[len("up_blocks.")])]
        else:
            hidden = channels[int(name[len("down_blocks.")])]
        tensors[f"ip_adapter.{key_id}.to_k_ip.weight"] = rand(hidden, cross)
        tensors[f"ip_adapter.{key_id}.to_v_ip.weight"] = rand(hidden, cross)
        key_id += 2
    return tensors


def build_tiny_ip_adapter(pipeline_dir: Path, out_dir: Path, *, seed: int = 300, encoder_seed: int | None = None,
                          weight_name: str = WEIGHT_NAME, with_encoder: bool = True) -> Path:
    """An adapter folder for the pipeline at ``pipeline_dir`` (its ``unet/config.json``): the
    weights file plus (``with_encoder``) its ``image_encoder`` folder (``encoder_seed``: its
    weights; the same seed gives the same encoder). Returns the weights file."""
    import torch
    from diffusers import UNet2DConditionModel
    from safetensors.torch import save_file

    config = json.loads((Path(pipeline_dir) / "unet" / "config.json").read_text("utf-8"))
    with torch.device("meta"):  # only the processor names are read
        names = list(UNet2DConditionModel.from_config(config).attn_processors)
    out_dir = Path(out_dir)
    tmp = out_dir.with_name(out_dir.name + ".partial")
    shutil.rmtree(tmp, ignore_errors=True)
    tmp.mkdir(parents=True)
    save_file(adapter_state_dict(config, names, embed_dim=IMAGE_ENCODER["projection_dim"], seed=seed),
              str(tmp / weight_name))
    if with_encoder:
        build_tiny_image_encoder(tmp / ENCODER_FOLDER, seed=seed + 1 if encoder_seed is None else encoder_seed)
    if out_dir.exists():
        shutil.rmtree(out_dir)
    tmp.rename(out_dir)
    return out_dir / weight_name


def tiny_ip_adapter_paths(root: Path) -> dict[str, Path]:
    """name -> weights file of the adapters ``write_tiny_ip_adapters(root)`` writes."""
    return {name: Path(root) / FOLDER / name / WEIGHT_NAME for name in (SD15_ADAPTER, SD15_ADAPTER_B, SDXL_ADAPTER)}


def write_tiny_ip_adapters(root: Path) -> dict[str, Path]:
    """Adapters for the tiny set under ``root`` (``tiny.write_tiny_set`` first), in its
    ``ipadapter`` folder so they resolve by name when ``root`` is a model folder: name -> file."""
    from .tiny import load_tiny_set

    tiny = load_tiny_set(root)
    folder = Path(root) / FOLDER
    build_tiny_ip_adapter(tiny.sd15, folder / SD15_ADAPTER, seed=300, encoder_seed=301)
    build_tiny_ip_adapter(tiny.sd15, folder / SD15_ADAPTER_B, seed=310, encoder_seed=301)
    build_tiny_ip_adapter(tiny.sdxl, folder / SDXL_ADAPTER, seed=400, encoder_seed=401)
    return tiny_ip_adapter_paths(root)


def ensure_tiny_ip_adapters(root: Path) -> dict[str, Path]:
    """``write_tiny_ip_adapters(root)`` unless they are there already (a file lock keeps parallel
    test processes from writing them twice)."""
    from filelock import FileLock

    paths = tiny_ip_adapter_paths(root)
    with FileLock(str(root) + ".ipadapter.lock"):
        if not all(p.is_file() for p in paths.values()):
            write_tiny_ip_adapters(root)
    return paths


def main(argv: list[str] | None = None) -> int:
    args = sys.argv[1:] if argv is None else argv
    if len(args) != 1 or args[0].startswith("-"):
        print("usage: python -m brushwork.testing.tiny_ip_adapter TINY_ROOT", file=sys.stderr)
        return 2
    for name, path in write_tiny_ip_adapters(Path(args[0])).items():
        print(f"{name}: {path}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
