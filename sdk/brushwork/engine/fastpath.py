"""The fast path: how a pipeline is placed and tuned for the device it runs on.

Chosen from the device (``FastPath.for_device``) and overridable with ``Studio(fast=...)``:
``True``/``None`` = the device's fast settings, ``False`` = the plain path (fp32, nothing
fused), or a ``FastPath`` of your own. Everything here changes speed and memory only; a test
checks that fast and plain images agree within a tolerance.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, replace

import torch

log = logging.getLogger(__name__)

GIB = 1024**3
TAESD = (("sd15", "madebyollin/taesd"), ("sdxl", "madebyollin/taesdxl"))


@dataclass(frozen=True)
class FastPath:
    device: str = "cpu"
    dtype: torch.dtype = torch.float32
    channels_last: bool = False  # UNet/ControlNet convolutions in NHWC: faster on tensor cores
    fuse_qkv: bool = False  # one matmul for q, k, v (undone while a LoRA is active)
    sdpa: bool = True  # torch's scaled_dot_product_attention (flash / mem-efficient kernels)
    compile: bool = False  # torch.compile the UNet: minutes of warm-up, then faster steps
    cpu_offload: bool = False  # move each model to the GPU only while it runs (small GPUs)
    tile_vae_above: int = 1536 * 1536  # decode/encode in tiles above this many pixels
    # Tiny VAEs (taesd) that turn previews into real pictures for a few ms of GPU: (family, ref)
    # pairs; used only when already on disk (a preview never downloads). Empty = linear previews.
    preview_vaes: tuple[tuple[str, str], ...] = ()

    @classmethod
    def for_device(cls, device: str) -> FastPath:
        kind = torch.device(device).type
        if kind == "cuda":
            index = torch.device(device).index or 0
            props = torch.cuda.get_device_properties(index)
            # fp16 is the published fast path for SD; bf16 avoids fp16 VAE overflow but is slower
            # on older cards, so it is opt-in via a FastPath of your own.
            return cls(device=device, dtype=torch.float16, channels_last=True, fuse_qkv=True,
                       cpu_offload=props.total_memory < 6 * GIB, preview_vaes=TAESD)
        if kind == "mps":
            return cls(device=device, dtype=torch.float16)
        return cls(device=device, dtype=torch.float32)

    @classmethod
    def plain(cls, device: str) -> FastPath:
        """Reference settings: fp32, no fusion, no layout changes."""
        return cls(device=device, dtype=torch.float32, sdpa=True, tile_vae_above=1 << 62)

    @classmethod
    def resolve(cls, fast, device: str) -> FastPath:
        if isinstance(fast, FastPath):
            return replace(fast, device=device) if fast.device != device else fast
        if fast is False:
            return cls.plain(device)
        return cls.for_device(device)


def pick_device(requested: str | None) -> str:
    if requested:
        kind = torch.device(requested).type
        if kind == "cuda" and not torch.cuda.is_available():
            from ..errors import BrushworkError

            raise BrushworkError(f"device {requested!r}: CUDA is not available on this machine")
        return requested
    if torch.cuda.is_available():
        return "cuda"
    if getattr(torch.backends, "mps", None) and torch.backends.mps.is_available():
        return "mps"
    return "cpu"


def tune_module(module: torch.nn.Module, fast: FastPath) -> None:
    """Layout tweaks that apply to any denoiser (UNet or ControlNet); a ControlNet also gets the
    UNet's fused q/k/v (no LoRA ever wraps a ControlNet: fused for good) and encodes its control
    picture once per job instead of once per step."""
    if fast.channels_last:
        module.to(memory_format=torch.channels_last)
    if hasattr(module, "controlnet_cond_embedding"):
        if fast.fuse_qkv:
            fuse_attention(module)
        encode_condition_once(module)


def fuse_attention(model: torch.nn.Module) -> None:
    """What UNet2DConditionModel.fuse_qkv_projections does, for a model without it (diffusers 0.42's
    ControlNetModel fuses the weights but keeps the unfused attention processors)."""
    from diffusers.models.attention_processor import Attention, FusedAttnProcessor2_0

    if any("Added" in type(p).__name__ for p in model.attn_processors.values()):
        return  # added-KV attention: not fusable
    for module in model.modules():
        if isinstance(module, Attention):
            module.fuse_projections(fuse=True)
    model.set_attn_processor(FusedAttnProcessor2_0())


def encode_condition_once(net: torch.nn.Module) -> None:
    """diffusers' ControlNet re-encodes its control picture at every step (eight convolutions, the
    first ones at full image size, on the whole CFG batch) although the pipeline passes the very
    same tensor each step. Keep the last encoding while that tensor lives; a new tensor (the next
    job, a tile) is encoded anew, and so is anything run with autograd on. The embedding module
    stays where it is (its forward is replaced on the instance), so state_dict keys do not move."""
    import weakref

    embedding = net.controlnet_cond_embedding
    if getattr(embedding, "_brushwork_once", False):
        return
    encode = embedding.forward
    last: dict = {}

    def forward(cond: torch.Tensor) -> torch.Tensor:
        if torch.is_grad_enabled():
            return encode(cond)
        seen = last.get("input")
        if seen is not None and seen() is cond:
            return last["output"]
        output = encode(cond)
        last.update(input=weakref.ref(cond), output=output)
        return output

    embedding.forward = forward
    embedding._brushwork_once = True


def tune_pipeline(pipe, fast: FastPath) -> None:
    """Once, after a base pipeline is loaded (its components are shared by every derived task)."""
    tune_module(pipe.unet, fast)
    if fast.sdpa and hasattr(torch.nn.functional, "scaled_dot_product_attention"):
        from diffusers.models.attention_processor import AttnProcessor2_0

        # Single-file and older configs can come with classic attention processors.
        for model in (pipe.unet, pipe.vae):
            if not any("Added" in type(p).__name__ for p in model.attn_processors.values()):
                model.set_attn_processor(AttnProcessor2_0())
    if fast.compile:
        compile_denoiser(pipe.unet, fast)
        # The decoder is a fifth to a quarter of a short CPU job (256², 6 steps): compiled like
        # the UNet, or the UNet's gain is diluted (benchmarks/RESULTS.md, sd15_cpu_speedup).
        compile_denoiser(pipe.vae.decoder, fast)
    if fast.cpu_offload:
        pipe.enable_model_cpu_offload(device=fast.device)


def compile_denoiser(module: torch.nn.Module, fast: FastPath) -> None:
    """torch.compile a UNet (or the VAE's decoder) in place (nn.Module.compile): it stays a
    UNet2DConditionModel, so from_pipe, LoRA loading and the memory accounting keep working on it.

    On the CPU, inductor's *freezing* is what pays: weights become constants that oneDNN can
    pre-pack for its convolutions and matmuls (measured 1.5x on the SD 1.5 UNet at 256x256, see
    benchmarks/RESULTS.md). Frozen weights are baked into the compiled code, so the Studio drops
    compiled code whenever the active LoRAs/embeddings change (``forget_compiled``). On CUDA,
    autotuned kernels without CUDA graphs (graphs would pin the pipelines' changing shapes).
    """
    if torch.device(fast.device).type == "cpu":
        import torch._inductor.config as inductor_config

        inductor_config.freezing = True
        module.compile()
    else:
        module.compile(mode="max-autotune-no-cudagraphs")


def forget_compiled() -> None:
    """Throw away compiled code (it recompiles on the next step): after weights changed."""
    torch._dynamo.reset()


def set_qkv_fused(pipe, fused: bool) -> None:
    """Fuse or unfuse q/k/v in the UNet and VAE (LoRA layers need them unfused)."""
    for model in (pipe.unet, pipe.vae):
        is_fused = getattr(model, "_brushwork_qkv_fused", False)
        if fused == is_fused:
            continue
        try:
            if fused:
                model.fuse_qkv_projections()
            else:
                model.unfuse_qkv_projections()
        except (ValueError, AttributeError) as exc:  # e.g. added-KV attention: not fusable
            log.debug("qkv fusion unavailable for %s: %s", type(model).__name__, exc)
            continue
        model._brushwork_qkv_fused = fused


def set_vae_tiling(pipe, *, width: int, height: int, fast: FastPath, seamless: bool) -> None:
    """Tile the VAE for large images, never while seamless padding is on (tiles would seam)."""
    vae = pipe.vae
    if not hasattr(vae, "enable_tiling"):
        return
    if not seamless and width * height > fast.tile_vae_above:
        vae.enable_tiling()
    else:
        vae.disable_tiling()


def load_preview_decoder(ref: str, fast: FastPath):
    """A callable latent -> RGB PIL image through a tiny VAE at ``ref`` (a folder, or a hub id
    already in the HF cache), or None when it is not on this machine or does not load."""
    from pathlib import Path

    from diffusers import AutoencoderTiny

    try:
        if Path(ref).expanduser().is_dir():
            vae = AutoencoderTiny.from_pretrained(str(Path(ref).expanduser()), torch_dtype=fast.dtype)
        else:
            from ..models.sources import hub_cached_file

            if hub_cached_file(ref, "config.json") is None:
                return None
            vae = AutoencoderTiny.from_pretrained(ref, torch_dtype=fast.dtype, local_files_only=True)
    except Exception as exc:
        log.warning("preview VAE %s unavailable (%s): using linear previews", ref, exc)
        return None
    vae = vae.to(fast.device).eval()

    def decode(latent: torch.Tensor):
        import numpy as np
        from PIL import Image

        if latent.dim() == 3:
            latent = latent[None]
        with torch.no_grad():
            # taesd decodes the pipeline's (scaled) latents directly: its scaling_factor is 1.
            rgb = vae.decode(latent[:1].to(vae.device, vae.dtype)).sample[0]
        rgb = ((rgb.float().clamp(-1, 1) + 1) * 127.5).round().to(torch.uint8).permute(1, 2, 0).cpu().numpy()
        return Image.fromarray(np.ascontiguousarray(rgb), "RGB")

    return decode
