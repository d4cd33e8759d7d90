"""Inpainting masks: loading (white = repaint), growing, and an exact paste-back.

The promise to artists: after inpainting, every pixel outside the (grown) mask is the original
pixel, bit for bit. ``paste_back`` keeps it by construction: the blend weight is exactly 0 outside
the mask, and the soft feather ramps *inward* from the mask's edge, never outward.
"""

from __future__ import annotations

import numpy as np
from PIL import Image, ImageFilter

from ..errors import InputImageError
from .images import has_real_alpha, open_image

THRESHOLD = 128  # a mask pixel at or above this is "repaint"


def load_mask(data: bytes, size: tuple[int, int] | None = None, *, what: str = "mask") -> Image.Image:
    """Decode a mask to a binary ``L`` image (255 = repaint, 0 = keep).

    Any mode works: greyscale or colour use their brightness; an image with transparency (a
    stroke painted on an empty layer) uses its alpha, so both white-on-black masks and
    alpha-only layers from painting apps mean what the artist painted. ``size`` is the size of
    the picture the mask applies to: a mask of another size is an error, never silently
    stretched (a stretched mask repaints pixels the artist meant to keep).
    """
    img = open_image(data, what=what)
    if size is not None and img.size != tuple(size):
        raise InputImageError(
            f"{what}: is {img.size[0]}x{img.size[1]} but the image it masks is {size[0]}x{size[1]}; "
            "they must match")
    grey = img.convert("RGBA").getchannel("A") if has_real_alpha(img) else img.convert("L")
    return binarize(grey)


def binarize(mask: Image.Image) -> Image.Image:
    return mask.convert("L").point(lambda v: 255 if v >= THRESHOLD else 0)


def grow_mask(mask: Image.Image, px: int) -> Image.Image:
    """Dilate the repaint area by ``px`` pixels (square neighbourhood); px=0 returns a copy."""
    if px < 0:
        raise ValueError("grow_mask: px must be >= 0")
    out = binarize(mask)
    # Repeated 3x3 max filters: linear in px (one big MaxFilter is quadratic in its size).
    for _ in range(int(px)):
        out = out.filter(ImageFilter.MaxFilter(3))
    return out


def feather_weights(mask: Image.Image, feather: int) -> np.ndarray:
    """Blend weights in [0, 1] (float64, HxW): 0 outside the mask, ramping up to 1 over
    ``feather`` pixels *inside* it. Built from successive erosions, so a pixel's weight is
    (its distance to the outside, in pixels) / feather, capped at 1."""
    binary = binarize(mask)
    inside = np.asarray(binary, dtype=np.uint8) >= THRESHOLD
    if feather <= 0:
        return inside.astype(np.float64)
    total = np.zeros(inside.shape, dtype=np.float64)
    eroded = binary
    for k in range(int(feather)):
        if k:
            eroded = eroded.filter(ImageFilter.MinFilter(3))
        layer = np.asarray(eroded, dtype=np.uint8) >= THRESHOLD
        if not layer.any():
            break
        total += layer
    weights = total / float(feather)
    weights[~inside] = 0.0  # already 0; stated so that no future change can leak outside
    return weights


def paste_back(original: Image.Image, generated: Image.Image, mask: Image.Image, feather: int = 0) -> Image.Image:
    """Blend ``generated`` into ``original`` through ``mask`` (255 = repaint).

    Works at the original's size: a generated image of another size (the model ran at a multiple
    of 8) is resized to it first. Pixels where the mask is 0 are copied from ``original``
    unchanged; the feather softens the seam inside the mask only.
    """
    if mask.size != original.size:
        raise InputImageError(
            f"mask: is {mask.size[0]}x{mask.size[1]} but the image is {original.size[0]}x{original.size[1]}")
    mode = "RGBA" if original.mode in ("RGBA", "LA", "PA") else "RGB"
    base = original.convert(mode)
    gen = generated.convert(mode)
    if gen.size != base.size:
        gen = gen.resize(base.size, Image.Resampling.LANCZOS)
    weights = feather_weights(mask, feather)[..., None]
    a = np.asarray(base, dtype=np.float64)
    b = np.asarray(gen, dtype=np.float64)
    blended = np.clip(np.rint(a * (1.0 - weights) + b * weights), 0, 255).astype(np.uint8)
    # Exactness outside the mask by construction, not by floating-point luck.
    keep = weights[..., 0] == 0.0
    blended[keep] = np.asarray(base, dtype=np.uint8)[keep]
    return Image.fromarray(blended, mode)


def inpaint_control_array(image: Image.Image, mask: Image.Image) -> np.ndarray:
    """The control_v11p_sd15_inpaint convention: RGB in [0, 1], masked pixels set to -1.
    Returns float32 (1, 3, H, W), the layout diffusers takes as a control image tensor."""
    if mask.size != image.size:
        mask = mask.resize(image.size, Image.Resampling.NEAREST)
    arr = np.asarray(image.convert("RGB"), dtype=np.float32) / 255.0
    masked = np.asarray(binarize(mask), dtype=np.uint8) >= THRESHOLD
    arr = arr.copy()
    arr[masked] = -1.0
    return np.ascontiguousarray(arr.transpose(2, 0, 1)[None])
