"""OpenPose keypoints → the stick-figure picture an openpose ControlNet was trained on.

The drawing follows the published convention (CMU OpenPose → ControlNet → controlnet-aux
``draw_bodypose``): 18 COCO-order body keypoints, limbs as filled ellipses of half-width 4 px in
the limb's colour at 60 % brightness, then each joint as a filled circle of radius 4 px in its
full colour, on black, at a 512-px scale. Missing joints (confidence 0) and limbs touching them
are skipped. OpenPose BODY_25 input is mapped to the 18-point order.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np
from PIL import Image, ImageDraw

from ..errors import InputImageError
from ..openpose import COLORS, DRAWN_LIMBS

LIMB_BRIGHTNESS = 0.6
STICK_WIDTH = 4  # at 512 px
JOINT_RADIUS = 4  # at 512 px
REFERENCE_SIDE = 512

# BODY_25 index of each COCO-18 keypoint (BODY_25 adds mid-hip at 8 and feet at 19..24).
BODY25_TO_COCO18 = (0, 1, 2, 3, 4, 5, 6, 7, 9, 10, 11, 12, 13, 14, 15, 16, 17, 18)


def parse_people(data: Any) -> list[np.ndarray]:
    """OpenPose JSON (a dict with ``people``, or the list of people itself) → one (18, 3) array
    of x, y, confidence per person. Accepts flat [x, y, c]*N or [x, y]*N lists (no confidence
    means every point is present), nested [[x, y, c], ...] lists, and 18 or 25 keypoints."""
    people = data.get("people") if isinstance(data, dict) else data
    if not isinstance(people, list):
        raise InputImageError("pose: expected OpenPose JSON with a 'people' list")
    out = []
    for i, person in enumerate(people):
        where = f"pose: people[{i}]"
        points = person.get("pose_keypoints_2d") if isinstance(person, dict) else person
        if points is None:
            raise InputImageError(f"{where}: has no pose_keypoints_2d")
        try:
            arr = np.asarray(points, dtype=np.float64)
        except (TypeError, ValueError):
            raise InputImageError(f"{where}: keypoints must be numbers") from None
        if arr.ndim == 1:
            if arr.size in (18 * 3, 25 * 3):
                arr = arr.reshape(-1, 3)
            elif arr.size in (18 * 2, 25 * 2):
                arr = np.concatenate([arr.reshape(-1, 2), np.ones((arr.size // 2, 1))], axis=1)
            elif arr.size == 0:
                continue  # OpenPose writes empty lists for people it lost track of
            else:
                raise InputImageError(
                    f"{where}: {arr.size} numbers is not 18 or 25 keypoints of (x, y) or (x, y, confidence)")
        elif arr.ndim == 2 and arr.shape[1] in (2, 3) and arr.shape[0] in (18, 25):
            if arr.shape[1] == 2:
                arr = np.concatenate([arr, np.ones((arr.shape[0], 1))], axis=1)
        else:
            raise InputImageError(f"{where}: keypoints of shape {arr.shape} are not 18 or 25 points")
        if not np.isfinite(arr).all():
            raise InputImageError(f"{where}: keypoints must be finite numbers")
        if arr.shape[0] == 25:
            arr = arr[list(BODY25_TO_COCO18)]
        out.append(arr)
    return out


def render_openpose(data: Any, canvas_w: int | None = None, canvas_h: int | None = None,
                    size: tuple[int, int] | None = None) -> Image.Image:
    """Draw every person in ``data`` (OpenPose JSON) on black at ``size`` (width, height).

    Keypoints are in pixels of a canvas ``canvas_w`` x ``canvas_h`` (taken from the JSON's
    ``canvas_width``/``canvas_height`` when present) and are scaled to ``size``.
    """
    if isinstance(data, dict):
        canvas_w = data.get("canvas_width", canvas_w)
        canvas_h = data.get("canvas_height", canvas_h)
    people = parse_people(data)
    if size is None:
        size = (canvas_w, canvas_h)
    try:
        cw, ch = int(canvas_w), int(canvas_h)
        width, height = int(size[0]), int(size[1])
    except (TypeError, ValueError):
        raise InputImageError("pose: the canvas size is unknown (give canvas_width and canvas_height)") from None
    if cw < 1 or ch < 1 or width < 1 or height < 1:
        raise InputImageError(f"pose: the canvas {cw}x{ch} and size {width}x{height} must be positive")
    sx, sy = width / cw, height / ch
    scale = min(width, height) / REFERENCE_SIDE
    stick = max(1.0, STICK_WIDTH * scale)
    radius = max(1.0, JOINT_RADIUS * scale)

    canvas = Image.new("RGB", (width, height), (0, 0, 0))
    draw = ImageDraw.Draw(canvas)
    for person in people:
        present = person[:, 2] > 0
        xs, ys = person[:, 0] * sx, person[:, 1] * sy
        for (a, b), color in DRAWN_LIMBS:
            if not (present[a] and present[b]):
                continue
            dim = tuple(int(float(c) * LIMB_BRIGHTNESS) for c in color)
            draw.polygon(_ellipse_polygon(xs[a], ys[a], xs[b], ys[b], stick), fill=dim)
        for k, color in enumerate(COLORS):
            if not present[k]:
                continue
            x, y = int(xs[k]), int(ys[k])
            draw.ellipse((x - radius, y - radius, x + radius, y + radius), fill=color)
    return canvas


def _ellipse_polygon(x1: float, y1: float, x2: float, y2: float, half_width: float) -> list[tuple[float, float]]:
    """The limb ellipse between two joints as a polygon (like cv2.ellipse2Poly, 1° steps)."""
    cx, cy = (x1 + x2) / 2.0, (y1 + y2) / 2.0
    half_len = math.hypot(x2 - x1, y2 - y1) / 2.0
    angle = math.atan2(y1 - y2, x1 - x2)
    cos_a, sin_a = math.cos(angle), math.sin(angle)
    points = []
    for deg in range(0, 360, 4):
        t = math.radians(deg)
        ex, ey = half_len * math.cos(t), half_width * math.sin(t)
        points.append((cx + ex * cos_a - ey * sin_a, cy + ex * sin_a + ey * cos_a))
    return points
