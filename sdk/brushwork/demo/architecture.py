"""The demo model's shapes: small SD-1.5-like parts (VAE scale 8, CLIP-shaped text encoder)."""

from __future__ import annotations

import torch


def text_encoder_config():
    from transformers import CLIPTextConfig

    return CLIPTextConfig(vocab_size=49408, hidden_size=32, intermediate_size=64, num_hidden_layers=2,
                          num_attention_heads=4, max_position_embeddings=77, bos_token_id=49406,
                          eos_token_id=49407, pad_token_id=49407, projection_dim=32)


def build_vae():
    from diffusers import AutoencoderKL

    return AutoencoderKL(in_channels=3, out_channels=3, down_block_types=("DownEncoderBlock2D",) * 4,
                         up_block_types=("UpDecoderBlock2D",) * 4, block_out_channels=(16, 32, 32, 32),
                         layers_per_block=1, latent_channels=4, norm_num_groups=8, sample_size=64)


def build_unet(size: int):
    from diffusers import UNet2DConditionModel

    return UNet2DConditionModel(
        sample_size=size // 8, in_channels=4, out_channels=4, block_out_channels=(32, 64, 64),
        layers_per_block=1, down_block_types=("DownBlock2D", "CrossAttnDownBlock2D", "CrossAttnDownBlock2D"),
        up_block_types=("CrossAttnUpBlock2D", "CrossAttnUpBlock2D", "UpBlock2D"),
        cross_attention_dim=32, attention_head_dim=8, norm_num_groups=16,
        # A pooled-text embedding added to the timestep embedding reaches every ResNet block: global
        # attributes (the colour) are learned in hundreds of steps instead of the many thousands
        # cross-attention alone needed on a frozen random encoder (measured: 1000 steps of
        # cross-attention only left the UNet ignoring the prompt).
        addition_embed_type="text", addition_embed_type_num_heads=4)


def build_scheduler():
    from diffusers import PNDMScheduler

    # SD 1.5's own schedule, so every sampler Brushwork offers converts from it.
    return PNDMScheduler(beta_start=0.00085, beta_end=0.012, beta_schedule="scaled_linear",
                         num_train_timesteps=1000, skip_prk_steps=True, set_alpha_to_one=False,
                         steps_offset=1)


def inpaint_unet_from(unet):
    """A 9-channel copy of ``unet``: the extra inputs (mask, masked-image latents) start at zero."""
    from diffusers import UNet2DConditionModel

    config = dict(unet.config)
    config["in_channels"] = 9
    inpaint = UNet2DConditionModel.from_config(config)
    state = unet.state_dict()
    weight = state["conv_in.weight"]
    state["conv_in.weight"] = torch.cat([weight, torch.zeros(weight.shape[0], 5, *weight.shape[2:])], dim=1)
    inpaint.load_state_dict(state)
    return inpaint
