"""Tiny random-weight Stable Diffusion models, saved in the real on-disk layouts.

Every test in the project runs offline on these, through the same loading code users' models go
through. ``write_tiny_set(root)`` builds the whole set (deterministic seeds, a few seconds);
``load_tiny_set(root)`` only returns the paths. ``python -m brushwork.testing.tiny DIR`` writes it.

The builders are public so a test can make a tiny model of ANOTHER config too (the engine must
work on "any reasonable config"): each takes dicts of config overrides per component.

Shapes: UNet ``sample_size`` 32 with a 2-block VAE (scale factor 2), so 64x64 images work. The
text encoders are small (hidden 32) but keep CLIP's real 49408-token vocabulary and the real BPE
tokenizer shipped with the package, so 77-token chunking and prompt weighting behave for real.
"""

from __future__ import annotations

import json
import shutil
import sys
from dataclasses import dataclass, field
from pathlib import Path

CLIP_TOKENIZER_DIR = Path(__file__).resolve().parents[1] / "models" / "configs" / "clip-tokenizer"

CONTROL_KINDS = ("depth", "pose", "scribble", "lineart", "canny", "inpaint")
SDXL_CONTROL_KINDS = ("depth",)

# Names other tests refer to models by (through model dirs): keep them stable.
SD15_NAME = "tiny-sd15"
SD15_INPAINT_NAME = "tiny-sd15-inpaint"
SD15_SINGLE_FILE_NAME = "tiny-sd15.safetensors"
SDXL_NAME = "tiny-sdxl"
SDXL_SINGLE_FILE_NAME = "tiny-sdxl.safetensors"
VAE_NAME = "vae-tiny"
LORA_NAME = "lora-tiny.safetensors"
LORA_KOHYA_NAME = "lora-tiny-kohya.safetensors"
EMBEDDING_NAME = "embedding-tiny.safetensors"


def controlnet_name(kind: str, family: str = "sd15") -> str:
    return f"controlnet-tiny-{kind}" if family == "sd15" else f"controlnet-tiny-{family}-{kind}"


# --- default configs (diffusers' own tiny test shapes, with CLIP's real vocabulary) -----------

SD15_UNET = dict(
    block_out_channels=(32, 64), layers_per_block=2, sample_size=32, in_channels=4, out_channels=4,
    down_block_types=("DownBlock2D", "CrossAttnDownBlock2D"),
    up_block_types=("CrossAttnUpBlock2D", "UpBlock2D"), cross_attention_dim=32, attention_head_dim=8,
)
SDXL_UNET = dict(
    block_out_channels=(32, 64), layers_per_block=2, sample_size=32, in_channels=4, out_channels=4,
    down_block_types=("DownBlock2D", "CrossAttnDownBlock2D"),
    up_block_types=("CrossAttnUpBlock2D", "UpBlock2D"), attention_head_dim=(2, 4),
    use_linear_projection=True, addition_embed_type="text_time", addition_time_embed_dim=8,
    transformer_layers_per_block=(1, 2),
    projection_class_embeddings_input_dim=80,  # 6 time ids * 8 + pooled text embeds (32)
    cross_attention_dim=96,  # text_encoder (32) + text_encoder_2 (64) hidden states, concatenated
)
VAE = dict(
    block_out_channels=(32, 64), in_channels=3, out_channels=3,
    down_block_types=("DownEncoderBlock2D", "DownEncoderBlock2D"),
    up_block_types=("UpDecoderBlock2D", "UpDecoderBlock2D"), latent_channels=4, sample_size=64,
    norm_num_groups=32, layers_per_block=1,
)
TEXT_ENCODER = dict(
    vocab_size=49408, hidden_size=32, intermediate_size=37, num_hidden_layers=5,
    num_attention_heads=4, max_position_embeddings=77, projection_dim=32, layer_norm_eps=1e-5,
    hidden_act="quick_gelu", bos_token_id=49406, eos_token_id=49407, pad_token_id=1,
)
# SDXL's second encoder is wider than the first (real: 768 vs 1280): diffusers' single-file loader
# tells the two apart by width, so equal widths would load the first one's weights into both.
SDXL_TEXT_ENCODER_2 = dict(hidden_size=64, num_attention_heads=8, intermediate_size=37, projection_dim=32,
                           hidden_act="gelu")  # OpenCLIP bigG uses gelu, CLIP-L quick_gelu
SDXL_VAE = dict(scaling_factor=0.13025)  # SDXL's VAE latent scale (SD 1.5: 0.18215)
# SD 1.5's scheduler settings (the engine replaces the scheduler by sampler name anyway).
SD15_SCHEDULER = dict(
    beta_start=0.00085, beta_end=0.012, beta_schedule="scaled_linear", num_train_timesteps=1000,
    steps_offset=1, clip_sample=False, set_alpha_to_one=False, skip_prk_steps=True,
)
SDXL_SCHEDULER = dict(
    beta_start=0.00085, beta_end=0.012, beta_schedule="scaled_linear", num_train_timesteps=1000,
    steps_offset=1, timestep_spacing="leading", interpolation_type="linear", use_karras_sigmas=False,
)


@dataclass
class TinySet:
    """Paths of a written tiny set. Every path is a real file or folder in its usual layout."""

    root: Path
    sd15: Path
    sd15_inpaint: Path
    sd15_single_file: Path
    sdxl: Path
    controlnets: dict[str, Path] = field(default_factory=dict)
    sdxl_controlnets: dict[str, Path] = field(default_factory=dict)
    lora: Path | None = None
    embedding: Path | None = None
    vae: Path | None = None
    sdxl_single_file: Path | None = None  # tiny-sdxl in the original SGM single-file layout
    lora_kohya: Path | None = None  # the same LoRA in kohya/A1111 naming (what Civitai LoRAs use)


def _merged(base: dict, overrides: dict | None) -> dict:
    return {**base, **(overrides or {})}


def _clip_tokenizer(pad_token: str | None = None):
    from transformers import CLIPTokenizer

    tok = CLIPTokenizer.from_pretrained(str(CLIP_TOKENIZER_DIR))
    if pad_token is not None:  # SDXL's second (OpenCLIP) tokenizer pads with "!" (id 0)
        tok.pad_token = pad_token
    return tok


def _text_encoder(seed: int, overrides: dict | None, *, with_projection: bool):
    import torch
    from transformers import CLIPTextConfig, CLIPTextModel, CLIPTextModelWithProjection

    torch.manual_seed(seed)
    config = CLIPTextConfig(**_merged(TEXT_ENCODER, overrides))
    return (CLIPTextModelWithProjection if with_projection else CLIPTextModel)(config).eval()


def _vae(seed: int, overrides: dict | None):
    import torch
    from diffusers import AutoencoderKL

    torch.manual_seed(seed)
    return AutoencoderKL(**_merged(VAE, overrides)).eval()


def _unet(seed: int, config: dict):
    import torch
    from diffusers import UNet2DConditionModel

    torch.manual_seed(seed)
    return UNet2DConditionModel(**config).eval()


def _classic_tokenizer_files(folder: Path, pad_token: str | None = None) -> None:
    """Replace transformers 5's tokenizer.json with the classic vocab.json/merges.txt layout real
    SD repos ship: the same tokenizer, and it loads ~5x faster (0.3 s instead of 1.5 s here)."""
    for f in folder.iterdir():
        f.unlink()
    for name in ("vocab.json", "merges.txt", "tokenizer_config.json", "special_tokens_map.json"):
        shutil.copyfile(CLIP_TOKENIZER_DIR / name, folder / name)
    if pad_token is not None:
        for name in ("tokenizer_config.json", "special_tokens_map.json"):
            data = json.loads((folder / name).read_text("utf-8"))
            data["pad_token"] = pad_token
            (folder / name).write_text(json.dumps(data, indent=2), "utf-8")


def _save_pipeline(pipe, folder: Path) -> None:
    pipe.save_pretrained(str(folder))
    _classic_tokenizer_files(folder / "tokenizer")
    if (folder / "tokenizer_2").is_dir():
        _classic_tokenizer_files(folder / "tokenizer_2", pad_token="!")


def _save_atomically(out_dir: Path, save) -> Path:
    """Build into a sibling temp folder, then rename: a crash never leaves a half-written model."""
    out_dir = Path(out_dir)
    tmp = out_dir.with_name(out_dir.name + ".partial")
    shutil.rmtree(tmp, ignore_errors=True)
    save(tmp)
    if out_dir.exists():
        shutil.rmtree(out_dir)
    tmp.rename(out_dir)
    return out_dir


def build_tiny_sd15(out_dir: Path, *, seed: int = 0, inpaint: bool = False, unet: dict | None = None,
                    vae: dict | None = None, text_encoder: dict | None = None,
                    scheduler: dict | None = None) -> Path:
    """A StableDiffusionPipeline folder (no safety checker). ``inpaint`` gives a 9-channel UNet."""
    from diffusers import PNDMScheduler, StableDiffusionPipeline

    text_cfg = _merged(TEXT_ENCODER, text_encoder)
    unet_cfg = _merged(SD15_UNET, {"cross_attention_dim": text_cfg["hidden_size"]})
    unet_cfg = _merged(unet_cfg, {"in_channels": 9} if inpaint else None)
    unet_cfg = _merged(unet_cfg, unet)
    pipe = StableDiffusionPipeline(
        unet=_unet(seed, unet_cfg), vae=_vae(seed + 1, vae),
        text_encoder=_text_encoder(seed + 2, text_encoder, with_projection=False),
        tokenizer=_clip_tokenizer(), scheduler=PNDMScheduler.from_config(_merged(SD15_SCHEDULER, scheduler)),
        safety_checker=None, feature_extractor=None, requires_safety_checker=False,
    )
    return _save_atomically(out_dir, lambda d: _save_pipeline(pipe, d))


def build_tiny_sdxl(out_dir: Path, *, seed: int = 0, unet: dict | None = None, vae: dict | None = None,
                    text_encoder: dict | None = None, text_encoder_2: dict | None = None,
                    scheduler: dict | None = None) -> Path:
    """A StableDiffusionXLPipeline folder: two text encoders (the 2nd with projection), text_time."""
    from diffusers import EulerDiscreteScheduler, StableDiffusionXLPipeline

    te1 = _text_encoder(seed + 2, text_encoder, with_projection=False)
    te2 = _text_encoder(seed + 3, _merged(SDXL_TEXT_ENCODER_2, text_encoder_2), with_projection=True)
    unet_cfg = _merged(SDXL_UNET, unet)
    unet_cfg.setdefault("cross_attention_dim", None)
    if not (unet or {}).get("cross_attention_dim"):  # both encoders' hidden states, concatenated
        unet_cfg["cross_attention_dim"] = te1.config.hidden_size + te2.config.hidden_size
    if not (unet or {}).get("projection_class_embeddings_input_dim"):  # 6 size/crop ids + pooled text
        unet_cfg["projection_class_embeddings_input_dim"] = (
            6 * unet_cfg["addition_time_embed_dim"] + te2.config.projection_dim)
    pipe = StableDiffusionXLPipeline(
        unet=_unet(seed, unet_cfg), vae=_vae(seed + 1, _merged(SDXL_VAE, vae)), text_encoder=te1, text_encoder_2=te2,
        tokenizer=_clip_tokenizer(), tokenizer_2=_clip_tokenizer(pad_token="!"),
        scheduler=EulerDiscreteScheduler.from_config(_merged(SDXL_SCHEDULER, scheduler)),
    )
    return _save_atomically(out_dir, lambda d: _save_pipeline(pipe, d))


def build_tiny_controlnet(out_dir: Path, *, base: Path | None = None, family: str = "sd15",
                          seed: int = 0, conditioning_embedding_out_channels=(16, 32),
                          **overrides) -> Path:
    """A ControlNetModel folder matching a UNet's config.

    ``base``: a pipeline folder whose ``unet/config.json`` to match (else the default tiny UNet of
    ``family``). ``conditioning_embedding_out_channels`` must downsample the control image by the
    VAE's factor (2 for the tiny VAE: two entries). Real ControlNets start with zero convolutions
    (no effect); these are randomised so a control image visibly changes the result.
    """
    import torch
    from diffusers import ControlNetModel, UNet2DConditionModel

    if base is not None:
        unet_cfg = json.loads((Path(base) / "unet" / "config.json").read_text("utf-8"))
    else:
        unet_cfg = dict(SD15_UNET if family == "sd15" else SDXL_UNET)
    unet_cfg = {**unet_cfg, "in_channels": 4}  # a ControlNet sees the 4 latent channels only
    with torch.device("meta"):
        shape = UNet2DConditionModel.from_config(unet_cfg)  # only its config is used
    torch.manual_seed(seed)
    net = ControlNetModel.from_unet(
        shape, conditioning_embedding_out_channels=tuple(conditioning_embedding_out_channels),
        load_weights_from_unet=False)
    if overrides:
        net = ControlNetModel.from_config({**dict(net.config), **overrides})
    with torch.no_grad():
        zero_init = [*net.controlnet_down_blocks, net.controlnet_mid_block,
                     net.controlnet_cond_embedding.conv_out]
        for conv in zero_init:
            conv.weight.normal_(0.0, 0.05)
            conv.bias.normal_(0.0, 0.05)
    net.eval()
    return _save_atomically(out_dir, lambda d: net.save_pretrained(str(d)))


def build_tiny_vae(out_dir: Path, *, seed: int = 100, **overrides) -> Path:
    """A standalone AutoencoderKL folder (same shape as the tiny pipelines' VAE, other weights)."""
    vae = _vae(seed, overrides)
    return _save_atomically(out_dir, lambda d: vae.save_pretrained(str(d)))


def build_tiny_lora(pipeline_dir: Path, out_file: Path, *, seed: int = 7, rank: int = 4) -> Path:
    """A LoRA for the UNet and text encoder of ``pipeline_dir``, in the diffusers/PEFT format
    ``pipe.load_lora_weights`` reads. Both LoRA matrices are random, so it changes the image."""
    import torch
    from diffusers import StableDiffusionPipeline, UNet2DConditionModel
    from peft import LoraConfig
    from peft.utils import get_peft_model_state_dict
    from transformers import CLIPTextModel

    pipeline_dir = Path(pipeline_dir)
    unet = UNet2DConditionModel.from_pretrained(str(pipeline_dir / "unet"))
    text = CLIPTextModel.from_pretrained(str(pipeline_dir / "text_encoder"))
    torch.manual_seed(seed)
    unet.add_adapter(LoraConfig(r=rank, lora_alpha=rank, init_lora_weights=False,
                                target_modules=["to_q", "to_k", "to_v", "to_out.0"]))
    text.add_adapter(LoraConfig(r=rank, lora_alpha=rank, init_lora_weights=False,
                                target_modules=["q_proj", "k_proj", "v_proj", "out_proj"]))
    out_file = Path(out_file)
    tmp_dir = out_file.with_name(out_file.name + ".partial")
    shutil.rmtree(tmp_dir, ignore_errors=True)
    StableDiffusionPipeline.save_lora_weights(
        str(tmp_dir), unet_lora_layers=get_peft_model_state_dict(unet),
        text_encoder_lora_layers=get_peft_model_state_dict(text), weight_name=out_file.name)
    (tmp_dir / out_file.name).replace(out_file)
    shutil.rmtree(tmp_dir, ignore_errors=True)
    return out_file


def lora_to_kohya(lora_file: Path, out_file: Path) -> Path:
    """Rewrite a diffusers/PEFT LoRA in kohya naming (``lora_unet_..._to_q.lora_down.weight`` +
    ``.alpha``): the same weights, so it must give the very same image."""
    import torch
    from safetensors.torch import load_file, save_file

    out = {}
    for key, tensor in load_file(str(lora_file)).items():
        owner, rest = key.split(".", 1)
        module = rest.rsplit(".lora_", 1)[0]
        if owner == "unet":
            name = "lora_unet_" + module.replace(".", "_")
        else:  # kohya names the text encoder's modules with their text_model. prefix
            module = module if module.startswith("text_model.") else "text_model." + module
            name = "lora_te_" + module.replace(".", "_")
        out[f"{name}.{'lora_down' if '.lora_A.' in key else 'lora_up'}.weight"] = tensor
        if ".lora_A." in key:  # alpha = rank: scale 1, as the PEFT file (lora_alpha == r)
            out[f"{name}.alpha"] = torch.tensor(float(tensor.shape[0]))
    out_file = Path(out_file)
    tmp = out_file.with_name(out_file.name + ".partial")
    save_file(out, str(tmp), metadata={"ss_network_module": "networks.lora"})
    tmp.replace(out_file)
    return out_file


def build_tiny_embedding(out_file: Path, *, seed: int = 11, vectors: int = 2, dim: int = 32) -> Path:
    """A textual-inversion embedding in A1111's ``.safetensors`` layout (one ``emb_params`` tensor,
    ``vectors`` x ``dim``); the token is whatever the user types (the file name by convention)."""
    import torch
    from safetensors.torch import save_file

    gen = torch.Generator().manual_seed(seed)
    out_file = Path(out_file)
    tmp = out_file.with_name(out_file.name + ".partial")
    save_file({"emb_params": torch.randn(vectors, dim, generator=gen) * 0.5}, str(tmp))
    tmp.replace(out_file)
    return out_file


def build_tiny_single_file(pipeline_dir: Path, out_file: Path) -> Path:
    """A saved SD 1.5 or SDXL folder as one checkpoint in the original LDM/SGM (A1111) key layout."""
    from .ldm_export import export_sd15_single_file, export_sdxl_single_file

    if (Path(pipeline_dir) / "text_encoder_2").is_dir():
        return export_sdxl_single_file(pipeline_dir, out_file)
    return export_sd15_single_file(pipeline_dir, out_file)


def load_tiny_set(root: Path) -> TinySet:
    """The paths of a set written by ``write_tiny_set`` (cheap: touches nothing)."""
    root = Path(root)
    return TinySet(
        root=root,
        sd15=root / SD15_NAME,
        sd15_inpaint=root / SD15_INPAINT_NAME,
        sd15_single_file=root / SD15_SINGLE_FILE_NAME,
        sdxl=root / SDXL_NAME,
        controlnets={k: root / controlnet_name(k) for k in CONTROL_KINDS},
        sdxl_controlnets={k: root / controlnet_name(k, "sdxl") for k in SDXL_CONTROL_KINDS},
        lora=root / LORA_NAME,
        embedding=root / EMBEDDING_NAME,
        vae=root / VAE_NAME,
        sdxl_single_file=root / SDXL_SINGLE_FILE_NAME,
        lora_kohya=root / LORA_KOHYA_NAME,
    )


def write_tiny_set(root: Path) -> TinySet:
    """Build and save the whole tiny set under ``root`` (deterministic; a few seconds on a CPU)."""
    import torch

    root = Path(root)
    root.mkdir(parents=True, exist_ok=True)
    tiny = load_tiny_set(root)
    with torch.no_grad():
        build_tiny_sd15(tiny.sd15, seed=0)
        build_tiny_sd15(tiny.sd15_inpaint, seed=10, inpaint=True)
        build_tiny_single_file(tiny.sd15, tiny.sd15_single_file)
        build_tiny_sdxl(tiny.sdxl, seed=20)
        build_tiny_single_file(tiny.sdxl, root / SDXL_SINGLE_FILE_NAME)
        for i, kind in enumerate(CONTROL_KINDS):
            build_tiny_controlnet(tiny.controlnets[kind], base=tiny.sd15, seed=30 + i)
        for i, kind in enumerate(SDXL_CONTROL_KINDS):
            build_tiny_controlnet(tiny.sdxl_controlnets[kind], base=tiny.sdxl, seed=50 + i)
        build_tiny_vae(root / VAE_NAME, seed=100)
    # the same paths as tiny.vae/.lora/...: those fields are optional in TinySet, these are not
    build_tiny_lora(tiny.sd15, root / LORA_NAME)
    lora_to_kohya(root / LORA_NAME, root / LORA_KOHYA_NAME)
    build_tiny_embedding(root / EMBEDDING_NAME)
    return tiny


def main(argv: list[str] | None = None) -> int:
    args = sys.argv[1:] if argv is None else argv
    if len(args) != 1 or args[0].startswith("-"):
        print("usage: python -m brushwork.testing.tiny DIR", file=sys.stderr)
        return 2
    tiny = write_tiny_set(Path(args[0]))
    print(f"tiny models written to {tiny.root}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
