"""Seamless (tileable) generation: every convolution pads by wrapping around on the chosen axes.

A texture tiles without a seam when the networks treat the image as a torus: what leaves the right
edge comes back on the left. The UNet and the VAE decoder are convolutional, so it is enough that
every padded ``nn.Conv2d`` pads *circularly* on the seamless axes (and with zeros, as trained, on
the others). diffusers has no switch for this, so ``seamless(pipe, axes)`` patches each conv of
``pipe.unet``, ``pipe.vae`` and ``pipe.controlnet`` (a single net or a MultiControlNet) for the
duration of a ``with`` block and restores every one of them on exit, exceptions included.

VAE tiling is switched off inside the block: tiles decoded separately have their own borders and
would put seams back in.

The patch replaces the conv's ``_conv_forward`` on the instance (``nn.Conv2d.forward`` calls it),
so it reaches the plain convs and the convs inside peft's LoRA layers (``base_layer`` and
``lora_A``, which pad like the conv they adapt) alike. Not thread-safe per pipeline: the engine
runs one generation per pipeline at a time.

The VAE *encoder* (img2img, inpaint) downsamples with convs that pad nothing themselves: diffusers'
Downsample2D first appends one zero column and row (right, bottom). Those convs get a patch that
swaps the appended zeros for the first column/row on the seamless axes, which is exactly circular
padding of (0, 1, 0, 1), so an img2img input is seen as a torus too.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

import torch
import torch.nn.functional as F
from torch import nn

from ..errors import RecipeError

AXES = ("", "x", "y", "xy")
_MODEL_ATTRS = ("unet", "vae", "controlnet")
_MISSING = object()


def _padding_of(conv: nn.Conv2d) -> tuple[int, int] | None:
    """(pad_h, pad_w) for convs that pad by a fixed amount; None for the rest (left alone)."""
    padding = conv.padding
    if isinstance(padding, str) or len(padding) != 2:
        return None
    ph, pw = int(padding[0]), int(padding[1])
    return (ph, pw) if ph or pw else None


def _wrapping_forward(conv: nn.Conv2d, pad_h: int, pad_w: int, wrap_x: bool, wrap_y: bool):
    other = "constant" if conv.padding_mode == "zeros" else conv.padding_mode
    mode_x = "circular" if wrap_x else other
    mode_y = "circular" if wrap_y else other
    stride, dilation, groups = conv.stride, conv.dilation, conv.groups

    def _conv_forward(input: torch.Tensor, weight: torch.Tensor, bias: torch.Tensor | None):
        # pad W (the last dim) then H, each in its own mode: F.pad takes one mode per call
        x = F.pad(input, (pad_w, pad_w, 0, 0), mode=mode_x) if pad_w else input
        x = F.pad(x, (0, 0, pad_h, pad_h), mode=mode_y) if pad_h else x
        return F.conv2d(x, weight, bias, stride, 0, dilation, groups)

    return _conv_forward


def _wrapping_after_zero_pad(conv: nn.Conv2d, wrap_x: bool, wrap_y: bool):
    """For convs fed an input already zero-padded by one on the right and bottom: wrap instead."""
    stride, dilation, groups = conv.stride, conv.dilation, conv.groups

    def _conv_forward(input: torch.Tensor, weight: torch.Tensor, bias: torch.Tensor | None):
        x = input
        if wrap_x:  # the appended last column becomes the image's first column
            x = torch.cat([x[..., :, :-1], x[..., :, :1]], dim=-1)
        if wrap_y:
            x = torch.cat([x[..., :-1, :], x[..., :1, :]], dim=-2)
        return F.conv2d(x, weight, bias, stride, 0, dilation, groups)

    return _conv_forward


def _zero_padded_downsample_convs(model: nn.Module) -> set[int]:
    """ids of the convs inside diffusers' Downsample2D that get a hand-made (0, 1, 0, 1) zero pad."""
    found = set()
    for module in model.modules():
        if (type(module).__name__ == "Downsample2D" and getattr(module, "use_conv", False)
                and getattr(module, "padding", None) == 0 and isinstance(getattr(module, "conv", None), nn.Conv2d)):
            found.add(id(module.conv))
    return found


def seamless_models(pipe) -> list[nn.Module]:
    """The networks of ``pipe`` that seamless patches (those present)."""
    models = []
    for name in _MODEL_ATTRS:
        model = getattr(pipe, name, None)
        if isinstance(model, nn.Module):
            models.append(model)
    return models


@contextmanager
def seamless(pipe, axes: str) -> Iterator[int]:
    """Inside the block, ``pipe`` makes images that tile on ``axes`` ("", "x", "y" or "xy").

    Yields how many convolutions were patched (0 for ""). Everything is restored on exit.
    """
    if axes not in AXES:
        raise RecipeError("tiling", f"must be one of '', 'x', 'y', 'xy'; got {axes!r}")
    if not axes:
        yield 0
        return
    wrap_x, wrap_y = "x" in axes, "y" in axes
    patched: list[tuple[nn.Conv2d, object]] = []
    vae = getattr(pipe, "vae", None)
    vae_tiling = getattr(vae, "use_tiling", None)
    seen: set[int] = set()
    try:
        for model in seamless_models(pipe):
            after_zero_pad = _zero_padded_downsample_convs(model)
            for module in model.modules():
                if not isinstance(module, nn.Conv2d) or id(module) in seen:
                    continue
                seen.add(id(module))  # a conv shared by two models is patched once
                padding = _padding_of(module)
                if id(module) in after_zero_pad and padding is None:
                    forward = _wrapping_after_zero_pad(module, wrap_x, wrap_y)
                elif padding is not None:
                    forward = _wrapping_forward(module, *padding, wrap_x, wrap_y)
                else:
                    continue
                previous = module.__dict__.get("_conv_forward", _MISSING)
                module._conv_forward = forward
                patched.append((module, previous))
        if vae is not None and vae_tiling:
            vae.use_tiling = False
        yield len(patched)
    finally:
        for module, previous in reversed(patched):
            if previous is _MISSING:
                del module._conv_forward
            else:
                module._conv_forward = previous
        if vae is not None and vae_tiling is not None:
            vae.use_tiling = vae_tiling
