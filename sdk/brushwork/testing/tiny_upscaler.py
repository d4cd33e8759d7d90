"""Tiny random-weight super-resolution models, written as the files users download.

``build_tiny_esrgan`` writes an RRDBNet (ESRGAN / Real-ESRGAN) state dict in Real-ESRGAN's key
layout (``conv_first``, ``body.N.rdbK.convJ``, ``conv_body``, ``conv_upN``, ``conv_hr``,
``conv_last``: the layout of RealESRGAN_x4plus and most community 4x models), with 8 features and
one block, so spandrel's real ModelLoader detects it (architecture ESRGAN, scale from the number of
up-convolutions) and runs it in milliseconds. Scale 2 or 4; ``.safetensors`` or (for the pickle
opt-in tests) ``.pth``. Weights are seeded: the same file every time.
"""

from __future__ import annotations

from pathlib import Path

import torch

GROW = 32  # spandrel's RRDBNet fixes the dense blocks' growth channels at 32 (ESRGAN's default)


def esrgan_state_dict(*, scale: int = 4, features: int = 8, blocks: int = 1, seed: int = 0) -> dict[str, torch.Tensor]:
    """Real-ESRGAN-layout RRDBNet weights (random, small enough that outputs stay inside [0, 1])."""
    if scale not in (2, 4):
        raise ValueError("scale must be 2 or 4")
    gen = torch.Generator().manual_seed(seed)
    state: dict[str, torch.Tensor] = {}

    def conv(name: str, cin: int, cout: int, std: float = 0.05, bias: float = 0.0) -> None:
        state[f"{name}.weight"] = torch.randn(cout, cin, 3, 3, generator=gen) * std
        state[f"{name}.bias"] = torch.full((cout,), bias)

    conv("conv_first", 3, features, std=0.2)
    for b in range(blocks):
        for r in (1, 2, 3):
            for j in range(1, 6):  # dense: conv j sees the input and every earlier conv's output
                cin = features + (j - 1) * GROW
                conv(f"body.{b}.rdb{r}.conv{j}", cin, features if j == 5 else GROW)
    conv("conv_body", features, features)
    for u in range({2: 1, 4: 2}[scale]):
        conv(f"conv_up{u + 1}", features, features, std=0.1)
    conv("conv_hr", features, features, std=0.1)
    conv("conv_last", features, 3, std=0.1, bias=0.5)
    return state


def build_tiny_esrgan(out_file: Path, *, scale: int = 4, seed: int = 0) -> Path:
    """Write a tiny ESRGAN to ``out_file`` (.safetensors, or .pth as a plain pickled state dict)."""
    out_file = Path(out_file)
    out_file.parent.mkdir(parents=True, exist_ok=True)
    state = esrgan_state_dict(scale=scale, seed=seed)
    if out_file.suffix.lower() == ".safetensors":
        from safetensors.torch import save_file

        save_file({k: v.contiguous() for k, v in state.items()}, str(out_file))
    else:
        torch.save(state, out_file)
    return out_file
