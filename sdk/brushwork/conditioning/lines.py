"""Line pictures for the scribble, lineart and canny ControlNets (numpy + PIL; OpenCV for canny).

These ControlNets were trained on white lines on black. Artists draw dark lines on light paper,
so a sketch whose background is light is inverted automatically; a sketch on a transparent layer
is read from its strokes whatever their colour.
"""

from __future__ import annotations

import cv2
import numpy as np
from PIL import Image, ImageOps

from .images import fit, has_real_alpha

SCRIBBLE_THRESHOLD = 127  # ControlNet-v1-1 gradio_scribble_interactive: stroke where value > 127


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
    """Scribble control: binary white strokes on black, at ``size``.

    As ControlNet-v1-1's interactive scribble demo makes it from a stroke mask: resized with the
    annotator's ``resize_image`` interpolation, then white where the strokes exceed 127. The line
    picture is contrast-stretched first, so a faint pencil sketch keeps its strokes (a full-contrast
    stroke mask is unchanged by that, and comes out exactly as the demo's).
    """
    lines = annotator_resize(ImageOps.autocontrast(sketch_lines(img)), size)
    binary = lines.point(lambda v: 255 if v > SCRIBBLE_THRESHOLD else 0)
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
# ControlNet's annotator (ControlNet-v1-1 annotator/canny, controlnet-aux CannyDetector) runs
# ``cv2.Canny(img, 100, 200)`` on the RGB picture resized to the control's resolution (INTER_AREA
# to shrink, INTER_LANCZOS4 to grow). OpenCV takes, per pixel, the strongest Sobel gradient of the
# three channels, so a red/green boundary of equal brightness is an edge; a grey picture loses it.

CANNY_LOW = 100
CANNY_HIGH = 200


def canny(img: Image.Image, low: float = CANNY_LOW, high: float = CANNY_HIGH) -> Image.Image:
    """Canny edges (``L``, 255 on edges) of ``img`` in colour: exactly ``cv2.Canny(rgb, low, high)``."""
    arr = np.ascontiguousarray(np.asarray(img.convert("L" if img.mode in ("L", "I", "I;16", "F") else "RGB")))
    return Image.fromarray(cv2.Canny(arr, float(low), float(high)), "L")


def annotator_resize(img: Image.Image, size: tuple[int, int]) -> Image.Image:
    """Resize as the annotator's ``resize_image`` does (OpenCV, area to shrink, Lanczos-4 to grow)."""
    if img.size == tuple(size):
        return img
    shrink = size[0] * size[1] < img.size[0] * img.size[1]
    arr = np.asarray(img)
    out = cv2.resize(arr, (int(size[0]), int(size[1])), interpolation=cv2.INTER_AREA if shrink else cv2.INTER_LANCZOS4)
    return Image.fromarray(out, img.mode)


def canny_image(img: Image.Image, size: tuple[int, int], low: float = CANNY_LOW,
                high: float = CANNY_HIGH) -> Image.Image:
    """Canny control picture at ``size`` (edges found at that size, so lines stay 1 px wide)."""
    return canny(annotator_resize(img.convert("RGB"), size), low, high).convert("RGB")


def looks_like_edge_map(img: Image.Image) -> bool:
    """True for a picture that already is a line/edge map (nearly all pixels black or white,
    mostly black): it is passed through instead of running edge detection on it again."""
    grey = np.asarray(img.convert("L"), dtype=np.uint8)
    extreme = (grey <= 16) | (grey >= 239)
    return float(extreme.mean()) >= 0.97 and float((grey <= 16).mean()) >= 0.5
