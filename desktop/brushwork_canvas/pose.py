"""OpenPose 18-point skeletons (COCO order): the pose layer's data, its JSON form and its drawing.

A person is a list of 18 ``[x, y, confidence]`` triples in document pixels; confidence 0 means the
joint is absent (OpenPose's convention) and it is neither drawn nor exported as present. Hands and
face keypoints read from OpenPose JSON (``hand_left/right_keypoints_2d``, ``face_keypoints_2d``)
ride along in ``Person.parts``, scaled with the body and written back, so the engine draws them.
"""

from __future__ import annotations

import copy
import json
import math
from typing import Any

from brushwork.errors import BrushworkError
from brushwork.openpose import (  # noqa: F401 (COLORS, DRAWN_LIMBS, KEYPOINTS re-exported)
    COLORS,
    DRAWN_LIMBS,
    FACE_POINT_COLOR,
    HAND_EDGE_COLORS,
    HAND_EDGES,
    HAND_POINT_COLOR,
    KEYPOINTS,
)

# A person standing and facing the viewer, in a unit box (x right, y down). The person's right
# side is on the picture's left, as OpenPose sees it.
_TEMPLATE = (
    (0.50, 0.10), (0.50, 0.22), (0.38, 0.22), (0.33, 0.39), (0.30, 0.55), (0.62, 0.22),
    (0.67, 0.39), (0.70, 0.55), (0.42, 0.55), (0.42, 0.76), (0.42, 0.96), (0.58, 0.55),
    (0.58, 0.76), (0.58, 0.96), (0.47, 0.08), (0.53, 0.08), (0.44, 0.09), (0.56, 0.09),
)

PARTS = ("hand_left_keypoints_2d", "hand_right_keypoints_2d", "face_keypoints_2d")


class Person(list[list[float]]):
    """18 ``[x, y, c]`` body joints; ``parts`` maps PARTS names to flat ``[x, y, c, ...]`` lists in
    document pixels (the skeleton editor moves body joints only: hands and face are carried)."""

    def __init__(self, joints: Any = (), parts: dict[str, list[float]] | None = None) -> None:
        super().__init__(joints)
        self.parts: dict[str, list[float]] = dict(parts or {})


class PoseFormatError(BrushworkError, ValueError):
    """An OpenPose JSON file that cannot be read as 18-point people."""

    code = "bad_pose"


def new_person(doc_width: int, doc_height: int, index: int = 0) -> Person:
    """A standing person 80 % of the document's height, shifted sideways for each extra person."""
    height = doc_height * 0.8
    width = height * 0.5
    left = (doc_width - width) / 2 + (index % 5) * width * 0.35 * (1 if index % 2 else -1)
    top = doc_height * 0.1
    return Person([round(left + u * width, 2), round(top + v * height, 2), 1.0] for u, v in _TEMPLATE)


def copy_people(people: list[Person]) -> list[Person]:
    return copy.deepcopy(people)


def to_openpose(people: list[Person], width: int, height: int) -> dict:
    """The OpenPose JSON that ControlNet tools read (and ``Control.signal`` carries)."""
    return {
        "people": [{"pose_keypoints_2d": [float(v) for joint in person for v in joint],
                    **{name: list(flat) for name, flat in getattr(person, "parts", {}).items() if flat}}
                   for person in people],
        "canvas_width": int(width),
        "canvas_height": int(height),
    }


def from_openpose(data: Any, width: int, height: int) -> list[Person]:
    """People from OpenPose JSON, scaled to a ``width`` x ``height`` document.

    Accepts pixel coordinates with ``canvas_width/height`` (rescaled when they differ from the
    document) and normalised 0..1 coordinates (as some editors write). Raises PoseFormatError.
    """
    if isinstance(data, (str, bytes)):
        try:
            data = json.loads(data)
        except (ValueError, UnicodeDecodeError) as exc:
            raise PoseFormatError(f"pose JSON is not valid JSON ({exc})") from None
    if isinstance(data, list):  # a list of frames: take the first, as OpenPose editors do
        data = data[0] if data else {}
    if not isinstance(data, dict) or not isinstance(data.get("people"), list):
        raise PoseFormatError("pose JSON needs a 'people' list (OpenPose format)")
    src_w = _positive(data.get("canvas_width"), width)
    src_h = _positive(data.get("canvas_height"), height)
    people = []
    for i, entry in enumerate(data["people"]):
        flat = entry.get("pose_keypoints_2d") if isinstance(entry, dict) else None
        if not isinstance(flat, list) or len(flat) < 54 or len(flat) % 3:
            raise PoseFormatError(f"people[{i}].pose_keypoints_2d must hold 18 x [x, y, confidence] numbers")
        try:
            values = [float(v) for v in flat[:54]]
        except (TypeError, ValueError):
            raise PoseFormatError(f"people[{i}].pose_keypoints_2d holds something that is not a number") from None
        if not all(math.isfinite(v) for v in values):
            raise PoseFormatError(f"people[{i}].pose_keypoints_2d holds an infinite or NaN number")
        joints = [values[k:k + 3] for k in range(0, 54, 3)]
        present = [j for j in joints if j[2] > 0]
        normalised = bool(present) and all(0 <= j[0] <= 1 and 0 <= j[1] <= 1 for j in present)
        sx, sy = (width, height) if normalised else (width / src_w, height / src_h)
        parts = {name: _scaled_part(entry.get(name), sx, sy, f"people[{i}].{name}") for name in PARTS
                 if entry.get(name)}
        people.append(Person(([round(x * sx, 2), round(y * sy, 2), c] for x, y, c in joints), parts))
    return people


def _scaled_part(flat: Any, sx: float, sy: float, where: str) -> list[float]:
    """A hand/face keypoint list scaled like its body (absent points stay 0, 0, 0)."""
    if not isinstance(flat, list) or len(flat) % 3:
        raise PoseFormatError(f"{where} must hold [x, y, confidence] numbers")
    try:
        values = [float(v) for v in flat]
    except (TypeError, ValueError):
        raise PoseFormatError(f"{where} holds something that is not a number") from None
    if not all(math.isfinite(v) for v in values):
        raise PoseFormatError(f"{where} holds an infinite or NaN number")
    out: list[float] = []
    for k in range(0, len(values), 3):
        x, y, c = values[k:k + 3]
        out += [round(x * sx, 2), round(y * sy, 2), c] if c > 0 else [0.0, 0.0, 0.0]
    return out


def _positive(value: Any, default: int) -> float:
    number = isinstance(value, (int, float)) and not isinstance(value, bool)
    return float(value) if number and value > 0 else float(default)


def nearest_joint(people: list[Person], x: float, y: float, radius: float) -> tuple[int, int] | None:
    """(person, joint) of the present joint closest to (x, y) within ``radius``, else None."""
    best, best_d = None, radius
    for p, person in enumerate(people):
        for j, (jx, jy, c) in enumerate(person):
            d = math.hypot(jx - x, jy - y)
            if c > 0 and d <= best_d:
                best, best_d = (p, j), d
    return best


def draw_people(painter, people: list[Person], *, scale: float = 1.0, handles: bool = False) -> None:
    """Draw skeletons with OpenPose's limb colours on ``painter`` (document coordinates)."""
    from PySide6.QtCore import QPointF, Qt
    from PySide6.QtGui import QBrush, QColor, QPen

    painter.save()
    painter.setRenderHint(painter.RenderHint.Antialiasing, True)
    limb_width = max(2.0, 4.0 * scale)
    for person in people:
        for (a, b), color in DRAWN_LIMBS:
            if person[a][2] > 0 and person[b][2] > 0:
                pen = QPen(QColor(*color, 160), limb_width, Qt.PenStyle.SolidLine, Qt.PenCapStyle.RoundCap)
                painter.setPen(pen)
                painter.drawLine(QPointF(person[a][0], person[a][1]), QPointF(person[b][0], person[b][1]))
        for j, (x, y, c) in enumerate(person):
            if c <= 0:
                continue
            r = limb_width * (1.6 if handles else 1.0)
            painter.setPen(QPen(QColor(255, 255, 255), 1.0) if handles else Qt.PenStyle.NoPen)
            painter.setBrush(QBrush(QColor(*COLORS[j])))
            painter.drawEllipse(QPointF(x, y), r, r)
        _draw_parts(painter, getattr(person, "parts", {}), max(1.0, scale))
    painter.restore()


def _draw_parts(painter, parts: dict[str, list[float]], scale: float) -> None:
    """Hands (bones on the hue circle, blue points) and face (white points), as the annotator."""
    from PySide6.QtCore import QPointF, Qt
    from PySide6.QtGui import QBrush, QColor, QPen

    for name, flat in parts.items():
        points = [(flat[k], flat[k + 1], flat[k + 2]) for k in range(0, len(flat) - 2, 3)]
        if name.startswith("hand") and len(points) == 21:
            for (a, b), color in zip(HAND_EDGES, HAND_EDGE_COLORS, strict=True):
                if points[a][2] > 0 and points[b][2] > 0:
                    painter.setPen(QPen(QColor(*(round(c) for c in color)), 2.0 * scale))
                    painter.drawLine(QPointF(*points[a][:2]), QPointF(*points[b][:2]))
        color, radius = (HAND_POINT_COLOR, 4.0) if name.startswith("hand") else (FACE_POINT_COLOR, 3.0)
        painter.setPen(Qt.PenStyle.NoPen)
        painter.setBrush(QBrush(QColor(*color)))
        for x, y, c in points:
            if c > 0:
                painter.drawEllipse(QPointF(x, y), radius * scale, radius * scale)
