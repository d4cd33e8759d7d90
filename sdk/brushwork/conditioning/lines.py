"""Line pictures for the scribble, lineart and canny ControlNets (numpy + PIL, no OpenCV).

These ControlNets were trained on white lines on black. Artists draw dark lines on light paper,
so a sketch whose background is light is inverted automatically; a sketch on a transparent layer
is read from its strokes whatever their colour.
"""

from __future__ import annotations

import numpy as np
from PIL import Image, ImageOps

from .images import fit, has_real_alpha

SCRIBBLE_THRESHOLD = 64  # after inversion: faint pencil still counts as a stroke


def sketch_lines(img: Image.Image) -> Image.Image:
    """A sketch → ``L`` with lines bright on a black background."""
    if has_real_alpha(img):
        rgba = img.convert("RGBA")
        alpha = np.asarray(rgba.getchannel("A"), dtype=np.float64) / 255.0
        # Strokes on an empty layer: their opacity is the line, whatever colour they were drawn in.
        return Image.fromarray(np.rint(alpha * 255.0).astype(np.uint8), "L")
    grey = img.convert("L")
    if _background_is_light(grey):
        grey = ImageOps.invert(grey)
    return grey


def scribble_image(img: Image.Image, size: tuple[int, int]) -> Image.Image:
    """Scribble control: binary white strokes on black, at ``size``."""
    lines = fit(sketch_lines(img), size)
    binary = lines.point(lambda v: 255 if v >= SCRIBBLE_THRESHOLD else 0)
    return binary.convert("RGB")


def lineart_image(img: Image.Image, size: tuple[int, int]) -> Image.Image:
    """Lineart control: anti-aliased white lines on black, contrast stretched, at ``size``."""
    lines = fit(sketch_lines(img), size)
    return ImageOps.autocontrast(lines).convert("RGB")


def _background_is_light(grey: Image.Image) -> bool:
    """The border's median decides: lines rarely run along all four edges, paper always does."""
    arr = np.asarray(grey, dtype=np.uint8)
    border = np.concatenate([arr[0], arr[-1], arr[:, 0], arr[:, -1]])
    return float(np.median(border)) >= 128.0


# ---- canny --------------------------------------------------------------------------------


def canny(img: Image.Image, low: float = 100.0, high: float = 200.0) -> Image.Image:
    """Canny edges (``L``, 255 on edges), the same recipe as OpenCV's default ``cv2.Canny``:
    3x3 Sobel, L1 gradient magnitude, non-maximum suppression in 4 directions, double threshold,
    hysteresis. Thresholds are on the 0..255 brightness scale, as in controlnet-aux (100, 200)."""
    if low > high:
        low, high = high, low
    g = np.asarray(img.convert("L"), dtype=np.float64)
    p = np.pad(g, 1, mode="edge")
    gx = (p[:-2, 2:] + 2 * p[1:-1, 2:] + p[2:, 2:]) - (p[:-2, :-2] + 2 * p[1:-1, :-2] + p[2:, :-2])
    gy = (p[2:, :-2] + 2 * p[2:, 1:-1] + p[2:, 2:]) - (p[:-2, :-2] + 2 * p[:-2, 1:-1] + p[:-2, 2:])
    mag = np.abs(gx) + np.abs(gy)

    # Quantise the gradient direction to 0°, 45°, 90°, 135° and keep local maxima along it.
    angle = (np.rad2deg(np.arctan2(gy, gx)) + 180.0) % 180.0
    m = np.pad(mag, 1)
    h, w = mag.shape

    def shifted(dy: int, dx: int) -> np.ndarray:
        return m[1 + dy:1 + dy + h, 1 + dx:1 + dx + w]

    keep = np.zeros_like(mag, dtype=bool)
    for lo_deg, hi_deg, (dy, dx) in ((-1, 22.5, (0, 1)), (157.5, 181, (0, 1)), (22.5, 67.5, (1, 1)),
                                     (67.5, 112.5, (1, 0)), (112.5, 157.5, (1, -1))):
        sector = (angle >= lo_deg) & (angle < hi_deg)
        local_max = (mag > shifted(dy, dx)) & (mag >= shifted(-dy, -dx))
        keep |= sector & local_max
    thin = np.where(keep, mag, 0.0)

    strong = thin > high
    weak = thin > low
    # Hysteresis: grow strong edges through 8-connected weak pixels until nothing changes.
    edges = strong
    while True:
        e = np.pad(edges, 1)
        grown = np.zeros_like(edges)
        for dy in (-1, 0, 1):
            for dx in (-1, 0, 1):
                grown |= e[1 + dy:1 + dy + h, 1 + dx:1 + dx + w]
        grown &= weak
        grown |= edges
        if np.array_equal(grown, edges):
            break
        edges = grown
    return Image.fromarray((edges * 255).astype(np.uint8), "L")


def canny_image(img: Image.Image, size: tuple[int, int], low: float = 100.0, high: float = 200.0) -> Image.Image:
    """Canny control picture at ``size`` (edges found at that size, so lines stay 1 px wide)."""
    return canny(fit(img.convert("RGB"), size), low, high).convert("RGB")


def looks_like_edge_map(img: Image.Image) -> bool:
    """True for a picture that already is a line/edge map (nearly all pixels black or white,
    mostly black): it is passed through instead of running edge detection on it again."""
    grey = np.asarray(img.convert("L"), dtype=np.uint8)
    extreme = (grey <= 16) | (grey >= 239)
    return float(extreme.mean()) >= 0.97 and float((grey <= 16).mean()) >= 0.5
