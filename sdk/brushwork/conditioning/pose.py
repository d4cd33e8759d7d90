"""OpenPose keypoints → the stick-figure picture an openpose ControlNet was trained on.

The picture is the one ControlNet's own annotator draws (lllyasviel's ControlNet-v1-1
``annotator/openpose``; controlnet-aux ``draw_bodypose``/``draw_handpose``/``draw_facepose`` draw
one person the same way), pixel for pixel, because the OpenCV calls are the same ones:
- the annotator draws on a canvas whose short side is 512 (its detect resolution, both sides
  rounded to multiples of 64) and resizes that canvas to the output size with bilinear
  interpolation, so line widths scale with the picture as they do there;
- bodies: the first 17 limbs of the 19-pair table (no shoulder → ear) as filled ellipse polygons
  of half-width 4 (``cv2.ellipse2Poly`` at 1° steps), limb-major across people, then the whole
  canvas at 60 % brightness, then every joint as a filled circle of radius 4 in its full colour;
- hands: 20 bones as 2-px lines coloured along the hue circle, then blue dots of radius 4;
- faces: white dots of radius 3.
Pixel positions are truncated as the annotator truncates them, and, as there, a hand or face
point on pixel row or column 0 is not drawn. Missing joints (confidence 0) and limbs touching
them are skipped. OpenPose BODY_25 input is mapped to the 18-point order.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

import cv2
import numpy as np
from PIL import Image

from ..errors import InputImageError
from ..openpose import (
    COLORS,
    DRAWN_LIMBS,
    FACE_KEYPOINT_COUNT,
    FACE_POINT_COLOR,
    HAND_EDGE_COLORS,
    HAND_EDGES,
    HAND_KEYPOINT_COUNT,
    HAND_POINT_COLOR,
)

LIMB_BRIGHTNESS = 0.6
STICK_WIDTH = 4  # half-width of a limb ellipse on the 512 canvas
JOINT_RADIUS = 4
HAND_LINE_WIDTH = 2
HAND_POINT_RADIUS = 4
FACE_POINT_RADIUS = 3
DETECT_RESOLUTION = 512  # the annotator's default detect_resolution: its drawing canvas's short side
_EDGE_PIXEL = 0.01  # the annotator's eps: hand/face points must lie beyond pixel 0 to be drawn
_FAR = float(1 << 20)  # keypoints far off the canvas are clamped so OpenCV's integers never overflow

# BODY_25 index of each COCO-18 keypoint (BODY_25 adds mid-hip at 8 and feet at 19..24).
BODY25_TO_COCO18 = (0, 1, 2, 3, 4, 5, 6, 7, 9, 10, 11, 12, 13, 14, 15, 16, 17, 18)


@dataclass
class PosePerson:
    """One person's keypoints as (N, 3) arrays of x, y, confidence in canvas pixels; hands and
    face are None when the JSON has none."""

    body: np.ndarray
    left_hand: np.ndarray | None = None
    right_hand: np.ndarray | None = None
    face: np.ndarray | None = None


def _points(value: Any, counts: tuple[int, ...], where: str) -> np.ndarray | None:
    """OpenPose keypoints as flat [x, y, c]*N / [x, y]*N or nested lists → (N, 3); None when empty."""
    try:
        arr = np.asarray(value, dtype=np.float64)
    except (TypeError, ValueError):
        raise InputImageError(f"{where}: keypoints must be numbers") from None
    wanted = " or ".join(str(n) for n in counts)
    if arr.ndim == 1:
        if arr.size == 0:
            return None  # OpenPose writes empty lists for what it did not find
        if arr.size in tuple(3 * n for n in counts):
            arr = arr.reshape(-1, 3)
        elif arr.size in tuple(2 * n for n in counts):
            arr = np.concatenate([arr.reshape(-1, 2), np.ones((arr.size // 2, 1))], axis=1)
        else:
            raise InputImageError(f"{where}: {arr.size} numbers is not {wanted} keypoints of (x, y) or "
                                  "(x, y, confidence)")
    elif arr.ndim == 2 and arr.shape[1] in (2, 3) and arr.shape[0] in counts:
        if arr.shape[1] == 2:
            arr = np.concatenate([arr, np.ones((arr.shape[0], 1))], axis=1)
    else:
        raise InputImageError(f"{where}: keypoints of shape {arr.shape} are not {wanted} points")
    if not np.isfinite(arr).all():
        raise InputImageError(f"{where}: keypoints must be finite numbers")
    return arr


def parse_pose(data: Any) -> list[PosePerson]:
    """OpenPose JSON (a dict with ``people``, or the list of people itself) → its people, with
    ``hand_left_keypoints_2d``, ``hand_right_keypoints_2d`` and ``face_keypoints_2d`` when given."""
    people = data.get("people") if isinstance(data, dict) else data
    if not isinstance(people, list):
        raise InputImageError("pose: expected OpenPose JSON with a 'people' list")
    out = []
    for i, person in enumerate(people):
        where = f"pose: people[{i}]"
        points = person.get("pose_keypoints_2d") if isinstance(person, dict) else person
        if points is None:
            raise InputImageError(f"{where}: has no pose_keypoints_2d")
        body = _points(points, (18, 25), where)
        if body is None:
            continue
        if body.shape[0] == 25:
            body = body[list(BODY25_TO_COCO18)]
        found = PosePerson(body)
        if isinstance(person, dict):
            for attr, key, count in (("left_hand", "hand_left_keypoints_2d", HAND_KEYPOINT_COUNT),
                                     ("right_hand", "hand_right_keypoints_2d", HAND_KEYPOINT_COUNT),
                                     ("face", "face_keypoints_2d", FACE_KEYPOINT_COUNT)):
                if person.get(key) is not None:
                    setattr(found, attr, _points(person[key], (count,), f"{where}.{key}"))
        out.append(found)
    return out


def parse_people(data: Any) -> list[np.ndarray]:
    """The bodies of ``parse_pose``: one (18, 3) array of x, y, confidence per person."""
    return [p.body for p in parse_pose(data)]


def annotator_canvas_size(width: int, height: int) -> tuple[int, int]:
    """The (width, height) the annotator draws on for an output of ``width`` x ``height``: short
    side DETECT_RESOLUTION, both sides rounded to a multiple of 64 (its ``resize_image``)."""
    k = DETECT_RESOLUTION / min(width, height)
    return max(64, int(round(width * k / 64.0)) * 64), max(64, int(round(height * k / 64.0)) * 64)


def render_openpose(data: Any, canvas_w: int | None = None, canvas_h: int | None = None,
                    size: tuple[int, int] | None = None) -> Image.Image:
    """Draw every person in ``data`` (OpenPose JSON) on black at ``size`` (width, height).

    Keypoints are in pixels of a canvas ``canvas_w`` x ``canvas_h`` (taken from the JSON's
    ``canvas_width``/``canvas_height`` when present) and are scaled to ``size``.
    """
    if isinstance(data, dict):
        canvas_w = data.get("canvas_width", canvas_w)
        canvas_h = data.get("canvas_height", canvas_h)
    people = parse_pose(data)
    if size is None:
        size = (canvas_w, canvas_h)  # type: ignore[assignment]
    try:
        cw, ch = int(canvas_w), int(canvas_h)  # type: ignore[arg-type]
        width, height = int(size[0]), int(size[1])  # type: ignore[index]
    except (TypeError, ValueError):
        raise InputImageError("pose: the canvas size is unknown (give canvas_width and canvas_height)") from None
    if cw < 1 or ch < 1 or width < 1 or height < 1:
        raise InputImageError(f"pose: the canvas {cw}x{ch} and size {width}x{height} must be positive")

    draw_w, draw_h = annotator_canvas_size(width, height)
    canvas: np.ndarray = np.zeros((draw_h, draw_w, 3), dtype=np.uint8)
    # The annotator works on keypoints normalised to 0..1 and multiplies by its canvas size;
    # doing the same arithmetic in the same order gives the same truncated pixels.
    def on_canvas(points: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        xs = np.clip(points[:, 0] / float(cw) * float(draw_w), -_FAR, _FAR)
        ys = np.clip(points[:, 1] / float(ch) * float(draw_h), -_FAR, _FAR)
        return xs, ys, points[:, 2] > 0

    bodies = [on_canvas(p.body) for p in people]
    for (a, b), color in DRAWN_LIMBS:  # limb-major across people, as the annotator loops
        for xs, ys, present in bodies:
            if present[a] and present[b]:
                _fill_limb(canvas, (xs[a], ys[a]), (xs[b], ys[b]), color)
    canvas = (canvas * LIMB_BRIGHTNESS).astype(np.uint8)
    for k, color in enumerate(COLORS):
        for xs, ys, present in bodies:
            if present[k]:
                cv2.circle(canvas, (int(xs[k]), int(ys[k])), JOINT_RADIUS, color, thickness=-1)
    for person in people:
        for hand in (person.left_hand, person.right_hand):
            if hand is not None:
                _draw_hand(canvas, *on_canvas(hand))
    for person in people:
        if person.face is not None:
            xs, ys, present = on_canvas(person.face)
            for x, y in _dots(xs, ys, present):
                cv2.circle(canvas, (x, y), FACE_POINT_RADIUS, FACE_POINT_COLOR, thickness=-1)

    if (draw_w, draw_h) != (width, height):
        canvas = cv2.resize(canvas, (width, height), interpolation=cv2.INTER_LINEAR)
    return Image.fromarray(canvas, "RGB")


def _fill_limb(canvas: np.ndarray, p1: tuple[float, float], p2: tuple[float, float],
               color: tuple[int, int, int]) -> None:
    """One limb: an ellipse between two joints, as the annotator builds it (centre and half
    length truncated to pixels, angle truncated to whole degrees)."""
    (x1, y1), (x2, y2) = p1, p2
    cx, cy = (x1 + x2) / 2.0, (y1 + y2) / 2.0
    length = ((y1 - y2) ** 2 + (x1 - x2) ** 2) ** 0.5
    angle = math.degrees(math.atan2(y1 - y2, x1 - x2))
    polygon = np.asarray(cv2.ellipse2Poly((int(cx), int(cy)), (int(length / 2), STICK_WIDTH), int(angle), 0, 360, 1))
    cv2.fillConvexPoly(canvas, polygon, color)


def _dots(xs: np.ndarray, ys: np.ndarray, present: np.ndarray) -> list[tuple[int, int]]:
    """Hand/face points that the annotator draws: present and beyond pixel row/column 0."""
    out = []
    for x, y, ok in zip(xs, ys, present, strict=True):
        px, py = int(x), int(y)
        if ok and px > _EDGE_PIXEL and py > _EDGE_PIXEL:
            out.append((px, py))
    return out


def _draw_hand(canvas: np.ndarray, xs: np.ndarray, ys: np.ndarray, present: np.ndarray) -> None:
    for (a, b), color in zip(HAND_EDGES, HAND_EDGE_COLORS, strict=True):
        ends = _dots(xs[[a, b]], ys[[a, b]], present[[a, b]])
        if len(ends) == 2:
            cv2.line(canvas, ends[0], ends[1], color, thickness=HAND_LINE_WIDTH)
    for x, y in _dots(xs, ys, present):
        cv2.circle(canvas, (x, y), HAND_POINT_RADIUS, HAND_POINT_COLOR, thickness=-1)
