"""PNG bytes from Blender images and numpy arrays, with zlib + numpy only (Blender has no PIL)."""

from __future__ import annotations

import struct
import zlib

import numpy as np


def encode_png(array: np.ndarray) -> bytes:
    """uint8 (h, w), (h, w, 3) or (h, w, 4), row 0 at the top → PNG bytes (8-bit, no filter)."""
    a = np.ascontiguousarray(array, dtype=np.uint8)
    if a.ndim == 2:
        a = a[..., None]
    h, w, channels = a.shape
    color_type = {1: 0, 3: 2, 4: 6}.get(channels)
    if color_type is None:
        raise ValueError(f"cannot write a PNG with {channels} channels")
    raw = np.concatenate([np.zeros((h, 1), np.uint8), a.reshape(h, w * channels)], axis=1).tobytes()

    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data) & 0xFFFFFFFF)

    header = struct.pack(">IIBBBBB", w, h, 8, color_type, 0, 0, 0)
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header) + chunk(b"IDAT", zlib.compress(raw, 6)) + chunk(b"IEND", b"")


def image_rgba(image) -> np.ndarray:
    """A bpy image's pixels as float32 (h, w, 4), row 0 at the TOP (Blender stores bottom-up)."""
    w, h = image.size
    if w == 0 or h == 0:
        raise ValueError(f"image {image.name!r} has no pixels (is its file missing?)")
    buf = np.empty(w * h * 4, dtype=np.float32)
    image.pixels.foreach_get(buf)
    return buf.reshape(h, w, 4)[::-1]


def image_png(image, *, channels: int = 3) -> bytes:
    """A bpy image as 8-bit PNG bytes (RGB by default; ``channels=1`` gives grey from red)."""
    # image.pixels are the stored values (sRGB-encoded for byte images), which is what a PNG holds.
    data = np.clip(image_rgba(image), 0.0, 1.0)
    data = data[..., 0] if channels == 1 else data[..., :channels]
    return encode_png(np.round(data * 255.0))


def set_image_rgba(image, rgba: np.ndarray) -> None:
    """Write float (h, w, 4) pixels, row 0 at the top, into a bpy image of the same size."""
    h, w = rgba.shape[:2]
    if tuple(image.size) != (w, h):
        image.scale(w, h)
    image.pixels.foreach_set(np.ascontiguousarray(rgba[::-1], dtype=np.float32).reshape(-1))
    image.update()


def sized_image(name: str, size: tuple[int, int], *, float_buffer: bool = False):
    """The image ``name`` at ``size``: reused when it has that size, else made anew (a capture
    replaces its picture; the artist's other images are never touched)."""
    import bpy

    image = bpy.data.images.get(name)
    if image is None or tuple(image.size) != tuple(size):
        if image is not None:
            bpy.data.images.remove(image)
        image = bpy.data.images.new(name, width=size[0], height=size[1], float_buffer=float_buffer)
    return image


def depth_preview(depth: np.ndarray) -> np.ndarray:
    """Depth → grey RGBA float (h, w, 4) in ControlNet's convention: near bright, far dark, nothing black."""
    finite = np.isfinite(depth)
    grey = np.zeros(depth.shape, dtype=np.float32)
    if finite.any():
        near, far = float(depth[finite].min()), float(depth[finite].max())
        span = far - near
        grey[finite] = 1.0 if span <= 0 else 1.0 - (depth[finite] - near) / span * 0.9
    out = np.ones(depth.shape + (4,), dtype=np.float32)
    out[..., :3] = grey[..., None]
    return out


def target_image(name: str, context):
    """The image an image operator works on: the one named, else the one shown in the Image Editor."""
    import bpy

    return bpy.data.images.get(name) if name else getattr(context.space_data, "image", None)
