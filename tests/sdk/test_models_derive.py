"""Configs derived from tensor shapes: real SD 1.5 / SDXL shapes give back exactly the shipped
configs (so real checkpoints load with the real config), and the LDM names our exporter writes
are the ones real checkpoints use (diffusers' own detection keys)."""

from __future__ import annotations

import pytest
import torch
from brushwork.models import derive
from brushwork.models.family import detect_checkpoint_keys
from brushwork.testing import ldm_export

SHAPE_KEYS = {
    "unet": ["in_channels", "out_channels", "layers_per_block", "block_out_channels", "down_block_types",
             "up_block_types", "cross_attention_dim", "attention_head_dim", "norm_num_groups",
             "transformer_layers_per_block", "use_linear_projection", "addition_embed_type",
             "addition_time_embed_dim", "projection_class_embeddings_input_dim"],
    "vae": ["block_out_channels", "layers_per_block", "latent_channels", "in_channels", "out_channels",
            "norm_num_groups", "scaling_factor"],
    "clip": ["vocab_size", "hidden_size", "intermediate_size", "num_hidden_layers", "num_attention_heads",
             "max_position_embeddings", "projection_dim", "hidden_act"],
}


def _meta_shapes(module) -> dict:
    return {k: v for k, v in module.state_dict().items()}


def _real_checkpoint_shapes(family: str) -> dict:
    """The tensor shapes of a real checkpoint of ``family``, built on the meta device (no memory)."""
    from diffusers import AutoencoderKL, UNet2DConditionModel
    from transformers import CLIPTextConfig, CLIPTextModel, CLIPTextModelWithProjection

    with torch.device("meta"):
        unet = UNet2DConditionModel.from_config(derive.shipped(family, "unet"))
        vae = AutoencoderKL.from_config(derive.shipped(family, "vae"))
        te = CLIPTextModel(CLIPTextConfig(**derive.shipped(family, "text_encoder")))
        tensors = {**ldm_export.unet_to_ldm(_meta_shapes(unet), dict(unet.config)),
                   **ldm_export.vae_to_ldm(_meta_shapes(vae), dict(vae.config))}
        text = ldm_export.text_encoder_to_ldm(_meta_shapes(te))
        if family == "sdxl":
            text = {ldm_export.SDXL_TEXT_PREFIX + k[len(ldm_export.TEXT_PREFIX):]: v for k, v in text.items()}
            te2 = CLIPTextModelWithProjection(CLIPTextConfig(**derive.shipped(family, "text_encoder_2")))
            text.update(ldm_export.open_clip_to_ldm(_meta_shapes(te2)))
        tensors.update(text)
    return {k: list(v.shape) for k, v in tensors.items()}


@pytest.mark.parametrize("family", ["sd15", "sdxl"])
def test_real_shapes_give_back_the_shipped_configs(family):
    shapes = _real_checkpoint_shapes(family)
    assert detect_checkpoint_keys(shapes).family == family
    derived = derive.pipeline_configs(shapes, family)
    parts = [("unet", "unet"), ("vae", "vae"), ("text_encoder", "clip")]
    if family == "sdxl":
        parts.append(("text_encoder_2", "clip"))
    for part, keys in parts:
        shipped = derive.shipped(family, part)
        for key in SHAPE_KEYS[keys]:
            if key in shipped:
                assert derived[part][key] == shipped[key], f"{family} {part}.{key}"


def test_exported_names_are_the_real_checkpoint_names():
    sd15 = _real_checkpoint_shapes("sd15")
    # keys diffusers itself uses to recognise real checkpoints, and their real shapes
    assert sd15["model.diffusion_model.output_blocks.11.0.skip_connection.weight"] == [320, 640, 1, 1]
    assert sd15["model.diffusion_model.input_blocks.1.1.transformer_blocks.0.attn2.to_k.weight"] == [320, 768]
    assert sd15["cond_stage_model.transformer.text_model.embeddings.position_embedding.weight"] == [77, 768]
    assert sd15["first_stage_model.decoder.mid.attn_1.q.weight"] == [512, 512, 1, 1]
    assert sd15["model.diffusion_model.output_blocks.2.1.conv.weight"] == [1280, 1280, 3, 3]
    assert sd15["model.diffusion_model.output_blocks.5.2.conv.weight"] == [1280, 1280, 3, 3]
    assert len([k for k in sd15 if k.startswith("model.diffusion_model.")]) == 686  # as in v1-5-pruned
    xl = _real_checkpoint_shapes("sdxl")
    assert xl["conditioner.embedders.1.model.transformer.resblocks.9.mlp.c_proj.bias"] == [1280]
    assert xl["conditioner.embedders.1.model.text_projection"] == [1280, 1280]
    assert xl["model.diffusion_model.label_emb.0.0.weight"] == [1280, 2816]
    assert xl["conditioner.embedders.0.transformer.text_model.embeddings.position_embedding.weight"] == [77, 768]


def test_controlnet_config_from_real_shapes():
    from brushwork.testing.ldm_export import controlnet_key
    from diffusers import ControlNetModel

    base = derive.CONFIGS / "controlnet-sd15" / "config.json"
    import json

    cfg = json.loads(base.read_text())
    with torch.device("meta"):
        net = ControlNetModel.from_config(cfg)
    shapes = {"control_model." + controlnet_key(k, 2, 6): list(v.shape) for k, v in net.state_dict().items()}
    assert shapes["control_model.input_hint_block.14.weight"] == [320, 256, 3, 3]
    derived = derive.controlnet_config(shapes, "sd15")
    for key in ("block_out_channels", "layers_per_block", "cross_attention_dim", "down_block_types",
                "conditioning_embedding_out_channels", "attention_head_dim", "in_channels"):
        assert derived[key] == cfg[key], key
