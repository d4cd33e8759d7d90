"""Throwaway tiny SD 1.5 / SDXL pipelines for the prompt, adapter and seamless tests.

No tests live here (pytest collects it and finds none). It stands in until the shared
``tiny_models`` fixture (brushwork.testing.tiny) is available; the tokenizer is a byte-level CLIP
BPE tokenizer (one token per character) so chunking at 75 tokens is exercised for real.
"""

from __future__ import annotations

import functools
import json
from pathlib import Path

import torch


def _bytes_to_unicode() -> dict[int, str]:
    """GPT-2/CLIP's reversible byte -> printable character table."""
    bs = list(range(ord("!"), ord("~") + 1)) + list(range(ord("¡"), ord("¬") + 1)) + list(range(ord("®"), ord("ÿ") + 1))
    cs = bs[:]
    n = 0
    for b in range(256):
        if b not in bs:
            bs.append(b)
            cs.append(256 + n)
            n += 1
    return dict(zip(bs, map(chr, cs)))


def write_byte_clip_tokenizer(folder: Path) -> Path:
    chars = list(_bytes_to_unicode().values())
    vocab = {}
    for c in chars:
        vocab[c] = len(vocab)
    for c in chars:
        vocab[c + "</w>"] = len(vocab)
    # a few merges so that common words are single tokens, like the real vocabulary
    merges = ["c a", "ca t</w>", "d o", "do g</w>", "r e", "re d</w>"]
    for merge in merges:
        vocab["".join(merge.split())] = len(vocab)
    vocab["<|startoftext|>"] = len(vocab)
    vocab["<|endoftext|>"] = len(vocab)
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "vocab.json").write_text(json.dumps(vocab))
    (folder / "merges.txt").write_text("#version: 0.2\n" + "\n".join(merges) + "\n")
    return folder


def _tokenizer(folder: Path, pad: str | None = None):
    from transformers import CLIPTokenizer

    write_byte_clip_tokenizer(folder)
    kwargs = {"pad_token": pad} if pad else {}
    return CLIPTokenizer(str(folder / "vocab.json"), str(folder / "merges.txt"), model_max_length=77, **kwargs)


def _text_config(**extra):
    from transformers import CLIPTextConfig

    return CLIPTextConfig(hidden_size=32, intermediate_size=37, layer_norm_eps=1e-05,
                          num_attention_heads=4, num_hidden_layers=5, vocab_size=1000,
                          hidden_act="gelu", **extra)


def _vae():
    from diffusers import AutoencoderKL

    return AutoencoderKL(block_out_channels=[32, 64], in_channels=3, out_channels=3,
                         down_block_types=["DownEncoderBlock2D", "DownEncoderBlock2D"],
                         up_block_types=["UpDecoderBlock2D", "UpDecoderBlock2D"], latent_channels=4,
                         norm_num_groups=8)


def _fix_eos(tokenizer, config_kwargs):
    config_kwargs["eos_token_id"] = tokenizer.eos_token_id
    config_kwargs["bos_token_id"] = tokenizer.bos_token_id
    config_kwargs["pad_token_id"] = tokenizer.pad_token_id
    return config_kwargs


@functools.lru_cache(maxsize=None)
def _sd15_folder(root: str) -> str:
    from diffusers import EulerDiscreteScheduler, StableDiffusionPipeline, UNet2DConditionModel
    from transformers import CLIPTextModel

    torch.manual_seed(0)
    tok = _tokenizer(Path(root) / "tok")
    unet = UNet2DConditionModel(block_out_channels=(32, 64), layers_per_block=2, sample_size=16,
                                in_channels=4, out_channels=4,
                                down_block_types=("DownBlock2D", "CrossAttnDownBlock2D"),
                                up_block_types=("CrossAttnUpBlock2D", "UpBlock2D"),
                                cross_attention_dim=32, norm_num_groups=8)
    te = CLIPTextModel(_text_config(**_fix_eos(tok, {})))
    pipe = StableDiffusionPipeline(vae=_vae(), text_encoder=te, tokenizer=tok, unet=unet,
                                   scheduler=EulerDiscreteScheduler(steps_offset=1), safety_checker=None,
                                   feature_extractor=None, requires_safety_checker=False)
    out = Path(root) / "sd15"
    pipe.save_pretrained(out)
    return str(out)


@functools.lru_cache(maxsize=None)
def _sdxl_folder(root: str) -> str:
    from diffusers import EulerDiscreteScheduler, StableDiffusionXLPipeline, UNet2DConditionModel
    from transformers import CLIPTextModel, CLIPTextModelWithProjection

    torch.manual_seed(0)
    tok = _tokenizer(Path(root) / "tok1")
    tok2 = _tokenizer(Path(root) / "tok2", pad="!")  # SDXL's second tokenizer pads with "!"
    unet = UNet2DConditionModel(block_out_channels=(32, 64), layers_per_block=2, sample_size=16,
                                in_channels=4, out_channels=4,
                                down_block_types=("DownBlock2D", "CrossAttnDownBlock2D"),
                                up_block_types=("CrossAttnUpBlock2D", "UpBlock2D"),
                                attention_head_dim=(2, 4), use_linear_projection=True,
                                addition_embed_type="text_time", addition_time_embed_dim=8,
                                transformer_layers_per_block=(1, 2), projection_class_embeddings_input_dim=80,
                                cross_attention_dim=64, norm_num_groups=8)
    te = CLIPTextModel(_text_config(**_fix_eos(tok, {})))
    te2 = CLIPTextModelWithProjection(_text_config(projection_dim=32, **_fix_eos(tok2, {})))
    pipe = StableDiffusionXLPipeline(vae=_vae(), text_encoder=te, text_encoder_2=te2, tokenizer=tok,
                                     tokenizer_2=tok2, unet=unet, scheduler=EulerDiscreteScheduler(steps_offset=1))
    out = Path(root) / "sdxl"
    pipe.save_pretrained(out)
    return str(out)


def load(family: str, root: Path):
    """A freshly loaded tiny pipeline of ``family`` (folder built once per root)."""
    from diffusers import StableDiffusionPipeline, StableDiffusionXLPipeline

    if family == "sd15":
        return StableDiffusionPipeline.from_pretrained(_sd15_folder(str(root)))
    return StableDiffusionXLPipeline.from_pretrained(_sdxl_folder(str(root)))
