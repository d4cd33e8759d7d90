"""Raw depth → the picture a depth ControlNet expects (near = bright, far = dark).

Blender sends camera distances as float32 (larger = farther; inf where nothing was hit). We map
them to 0..255 per image: explicit ``near``/``far`` when the client knows its clip range, else a
robust range from percentiles, so one stray far-away pixel cannot flatten the whole picture.
"""

from __future__ import annotations

import io
from collections.abc import Callable

import numpy as np
from PIL import Image

from ..errors import InputImageError

LOW_PERCENTILE = 2.0
HIGH_PERCENTILE = 98.0


def depth_to_image(depth, *, near: float | None = None, far: float | None = None, invert: bool = False,
                   size: tuple[int, int] | None = None) -> Image.Image:
    """A float (H, W) array → RGB (grey) picture, near bright and far dark.

    - ``near``/``far``: the distances that map to white and black (clipped beyond). Missing ones
      come from the 2nd/98th percentile of the finite values.
    - ``invert``: the data grows *toward* the camera (disparity, inverse depth), so the larger
      values are near. Explicit near/far are always taken literally, whatever their order.
    - NaN/inf mean "nothing hit": black, like the far plane.
    - constant depth (a flat wall facing the camera) is mid-grey, never a division by zero.
    - ``size`` (width, height) resizes the result (bilinear on the float values).
    """
    arr = np.asarray(depth, dtype=np.float64)
    if arr.ndim == 3 and arr.shape[2] == 1:
        arr = arr[..., 0]
    if arr.ndim != 2 or arr.size == 0:
        raise InputImageError(f"depth: expected a 2-D array of distances, got shape {arr.shape}")
    finite = np.isfinite(arr)
    values = np.zeros(arr.shape, dtype=np.float64)
    if finite.any():
        seen = arr[finite]
        lo, hi = np.percentile(seen, [LOW_PERCENTILE, HIGH_PERCENTILE])
        auto_near, auto_far = (hi, lo) if invert else (lo, hi)
        try:
            n = float(auto_near if near is None else near)
            f = float(auto_far if far is None else far)
        except (TypeError, ValueError):
            raise InputImageError(f"depth: near and far must be numbers, got near={near!r}, far={far!r}") from None
        if not (np.isfinite(n) and np.isfinite(f)):
            raise InputImageError(f"depth: near and far must be finite numbers, got near={n}, far={f}")
        span = f - n
        if abs(span) <= 1e-12 * max(1.0, abs(n), abs(f)):
            values[finite] = 0.5
        else:
            values[finite] = np.clip((f - arr[finite]) / span, 0.0, 1.0)
    img = Image.fromarray(values.astype(np.float32), mode="F")
    if size is not None and img.size != tuple(size):
        img = img.resize((size[0], size[1]), Image.Resampling.BILINEAR)
    out = np.clip(np.rint(np.asarray(img, dtype=np.float64) * 255.0), 0, 255).astype(np.uint8)
    return Image.fromarray(out, "L").convert("RGB")


def depth_from_bytes(data: bytes, *, width: int, height: int, fmt: str = "f32le") -> np.ndarray:
    """Decode a depth signal's bytes to a (height, width) float32 array, checking the size."""
    if fmt == "f32le":
        expected = int(width) * int(height) * 4
        if len(data) != expected:
            raise InputImageError(
                f"depth signal: {len(data)} bytes is not {width}x{height} float32 values "
                f"({expected} bytes expected)")
        return np.frombuffer(data, dtype="<f4").reshape(int(height), int(width))
    if fmt == "npy":
        try:
            arr = np.load(io.BytesIO(data), allow_pickle=False)
        except (ValueError, OSError, EOFError) as exc:
            raise InputImageError(f"depth signal: not a readable .npy array ({exc})") from None
        if arr.ndim == 3 and arr.shape[2] == 1:
            arr = arr[..., 0]
        if arr.ndim != 2 or not (np.issubdtype(arr.dtype, np.floating) or np.issubdtype(arr.dtype, np.integer)):
            raise InputImageError(f"depth signal: expected a 2-D numeric array, got {arr.dtype} {arr.shape}")
        if arr.shape != (int(height), int(width)):
            raise InputImageError(
                f"depth signal: the array is {arr.shape[1]}x{arr.shape[0]} but the signal says {width}x{height}")
        return arr.astype(np.float32)
    raise InputImageError(f"depth signal: unknown format {fmt!r} (use 'f32le' or 'npy')")


def depth_signal_to_image(signal: dict, read: Callable[[str], bytes], size: tuple[int, int]) -> Image.Image:
    """A Recipe depth signal (see ``Control``) → the control picture at ``size``."""
    ref = signal.get("data")
    if not ref:
        raise InputImageError("depth signal: has no data reference")
    try:
        width, height = int(signal["width"]), int(signal["height"])
    except (KeyError, TypeError, ValueError):
        raise InputImageError("depth signal: needs whole-number width and height") from None
    arr = depth_from_bytes(read(ref), width=width, height=height, fmt=signal.get("format", "f32le"))
    return depth_to_image(arr, near=signal.get("near"), far=signal.get("far"),
                          invert=bool(signal.get("invert", False)), size=size)
