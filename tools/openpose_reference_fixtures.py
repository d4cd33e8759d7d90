"""Make tests/fixtures/openpose/: pose pictures drawn by ControlNet's own annotator code.

The reference drawing functions are not a dependency of Brushwork (controlnet-aux pulls in
torch hub downloads, scipy, timm, matplotlib ...), so the pictures they draw are computed once
here and committed; tests/sdk/test_pose_reference.py compares Brushwork's drawing with them pixel
for pixel. Rerun after changing the cases:

    pip install --no-deps --target /tmp/cnaux controlnet-aux==0.0.10 matplotlib pyparsing cycler \
        kiwisolver python-dateutil six contourpy fonttools
    git show HEAD:annotator/openpose/util.py > /tmp/v11_util.py   # in lllyasviel/ControlNet-v1-1-nightly
    .venv/bin/python tools/openpose_reference_fixtures.py --aux /tmp/cnaux --v11 /tmp/v11_util.py

References used (2026-12-04): lllyasviel/ControlNet-v1-1-nightly e2b44154 annotator/openpose/util.py
(``draw_bodypose``/``draw_handpose``/``draw_facepose``, as ``draw_pose`` calls them) and
controlnet-aux 0.0.10 ``open_pose/util.py`` (single-person cases are checked against both; they
order several people differently, and the v1.1 annotator is what made the training pictures).
A picture at an output size is made as both annotators make it: drawn on a canvas whose short
side is 512 (``resize_image(img, 512)``: both sides rounded to multiples of 64), then
``cv2.resize(..., INTER_LINEAR)`` to the output size.
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import random
import sys
import types
from pathlib import Path
from typing import Any, NamedTuple

import cv2
import numpy as np

OUT = Path(__file__).resolve().parents[1] / "tests" / "fixtures" / "openpose"

# A standing person in a unit box (OpenPose's COCO-18 order), the canvas's default skeleton.
STANDING = (
    (0.50, 0.10), (0.50, 0.22), (0.38, 0.22), (0.33, 0.39), (0.30, 0.55), (0.62, 0.22),
    (0.67, 0.39), (0.70, 0.55), (0.42, 0.55), (0.42, 0.76), (0.42, 0.96), (0.58, 0.55),
    (0.58, 0.76), (0.58, 0.96), (0.47, 0.08), (0.53, 0.08), (0.44, 0.09), (0.56, 0.09),
)


def load_module(name: str, path: Path) -> types.ModuleType:
    spec = importlib.util.spec_from_file_location(name, path)
    assert spec and spec.loader
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module
    spec.loader.exec_module(module)
    return module


def load_aux_util(root: Path) -> types.ModuleType:
    """controlnet_aux/open_pose/util.py alone: its package __init__ imports every annotator (and
    torch hub code), and body.py needs scipy, so the package and body module are stand-ins that
    hold only what util.py takes from them (the Keypoint/BodyResult tuples)."""
    for name in ("cnaux_ref", "cnaux_ref.open_pose"):
        pkg = types.ModuleType(name)
        pkg.__path__ = []
        sys.modules[name] = pkg

    class Keypoint(NamedTuple):
        x: float
        y: float
        score: float = 1.0
        id: int = -1

    class BodyResult(NamedTuple):
        keypoints: list
        total_score: float
        total_parts: int

    body = types.ModuleType("cnaux_ref.open_pose.body")
    body.Keypoint = Keypoint  # type: ignore[attr-defined]
    body.BodyResult = BodyResult  # type: ignore[attr-defined]
    sys.modules["cnaux_ref.open_pose.body"] = body
    sys.path.insert(0, str(root))  # matplotlib for draw_handpose
    return load_module("cnaux_ref.open_pose.util", root / "controlnet_aux" / "open_pose" / "util.py")


def detect_canvas(width: int, height: int) -> tuple[int, int]:
    k = 512.0 / min(width, height)
    return int(np.round(width * k / 64.0)) * 64, int(np.round(height * k / 64.0)) * 64


def triples(flat: list[float]) -> np.ndarray:
    return np.asarray(flat, dtype=np.float64).reshape(-1, 3)


def draw_v11(util: types.ModuleType, case: dict) -> np.ndarray:
    """The v1.1 annotator's draw_pose(pose, H, W) on the detect canvas, resized to the output."""
    pose = case["pose"]
    cw, ch = float(pose["canvas_width"]), float(pose["canvas_height"])
    width, height = case["size"]
    dw, dh = detect_canvas(width, height)
    candidate: list[list[float]] = []
    subset = []
    hands, faces = [], []
    for person in pose["people"]:
        if not person["pose_keypoints_2d"]:
            continue  # OpenPose's empty entry for a person it lost track of
        row = []
        for x, y, c in triples(person["pose_keypoints_2d"]):
            if c > 0:
                row.append(len(candidate))
                candidate.append([x / cw, y / ch, c, len(candidate)])
            else:
                row.append(-1)
        subset.append(row + [0.0, float(sum(r >= 0 for r in row))])
        for key in ("hand_left_keypoints_2d", "hand_right_keypoints_2d"):
            if person.get(key):
                hands.append([[x / cw, y / ch] if c > 0 else [-1.0, -1.0] for x, y, c in triples(person[key])])
        if person.get("face_keypoints_2d"):
            face_points = triples(person["face_keypoints_2d"])
            faces.append([[x / cw, y / ch] if c > 0 else [-1.0, -1.0] for x, y, c in face_points])
    canvas = np.zeros((dh, dw, 3), dtype=np.uint8)
    canvas = util.draw_bodypose(canvas, candidate, subset)
    canvas = util.draw_handpose(canvas, hands)
    canvas = util.draw_facepose(canvas, faces)
    if (dw, dh) != (width, height):
        canvas = cv2.resize(canvas, (width, height), interpolation=cv2.INTER_LINEAR)
    return canvas


def draw_aux(util: types.ModuleType, case: dict) -> np.ndarray:
    """controlnet-aux 0.0.10's draw_poses (body, left hand, right hand, face per person)."""
    keypoint = sys.modules["cnaux_ref.open_pose.body"].Keypoint
    pose = case["pose"]
    cw, ch = float(pose["canvas_width"]), float(pose["canvas_height"])
    width, height = case["size"]
    dw, dh = detect_canvas(width, height)
    canvas = np.zeros((dh, dw, 3), dtype=np.uint8)

    def part(flat: list[float] | None) -> list | None:
        if not flat:
            return None
        return [keypoint(x / cw, y / ch) if c > 0 else keypoint(-1.0, -1.0) for x, y, c in triples(flat)]

    for person in pose["people"]:
        if not person["pose_keypoints_2d"]:
            continue
        body = [keypoint(x / cw, y / ch) if c > 0 else None for x, y, c in triples(person["pose_keypoints_2d"])]
        canvas = util.draw_bodypose(canvas, body)
        canvas = util.draw_handpose(canvas, part(person.get("hand_left_keypoints_2d")))
        canvas = util.draw_handpose(canvas, part(person.get("hand_right_keypoints_2d")))
        canvas = util.draw_facepose(canvas, part(person.get("face_keypoints_2d")))
    if (dw, dh) != (width, height):
        canvas = cv2.resize(canvas, (width, height), interpolation=cv2.INTER_LINEAR)
    return canvas


# ---- the cases -----------------------------------------------------------------------------------

def standing(left: float, top: float, w: float, h: float, missing: tuple[int, ...] = ()) -> list[float]:
    flat: list[float] = []
    for k, (u, v) in enumerate(STANDING):
        flat += [0.0, 0.0, 0.0] if k in missing else [round(left + u * w, 2), round(top + v * h, 2), 0.9]
    return flat


def hand(wrist: tuple[float, float], scale: float, rng: random.Random, missing: int = 0) -> list[float]:
    """21 hand points: a wrist and five fingers of four joints, fanned out, some missing."""
    pts = [list(wrist) + [0.8]]
    for finger in range(5):
        angle = -1.2 + finger * 0.5
        for joint in range(1, 5):
            r = scale * (0.35 + 0.2 * joint)
            pts.append([wrist[0] + r * np.sin(angle) + rng.uniform(-1, 1),
                        wrist[1] + r * np.cos(angle) + rng.uniform(-1, 1), 0.7])
    for i in rng.sample(range(21), missing):
        pts[i] = [0.0, 0.0, 0.0]
    return [round(float(v), 3) for p in pts for v in p]


def face(centre: tuple[float, float], radius: float, rng: random.Random) -> list[float]:
    pts = []
    for i in range(70):
        a = 2 * np.pi * i / 70
        r = radius * (0.3 + 0.7 * ((i * 7) % 11) / 10)
        pts += [centre[0] + r * np.cos(a), centre[1] + r * np.sin(a), 0.0 if i % 23 == 5 else 0.6]
    return [round(float(v), 3) for v in pts]


def random_person(rng: random.Random, cw: int, ch: int) -> list[float]:
    flat: list[float] = []
    for _ in range(18):
        if rng.random() < 0.1:
            flat += [0.0, 0.0, 0.0]
        else:
            flat += [round(rng.uniform(-0.05, 1.05) * cw, 3), round(rng.uniform(-0.05, 1.05) * ch, 3), 1.0]
    return flat


def cases() -> list[dict]:
    rng = random.Random(12)
    out = []
    one = {"people": [{"pose_keypoints_2d": standing(153.6, 51.2, 204.8, 409.6)}],
           "canvas_width": 512, "canvas_height": 512}
    out.append({"name": "standing_512", "size": [512, 512], "pose": one})
    for w, h in ((768, 512), (1024, 1024), (640, 384), (384, 640), (256, 256)):
        out.append({"name": f"standing_{w}x{h}", "size": [w, h], "pose": one})
    body = standing(300, 80, 260, 520)
    lw, rw = (body[4 * 3], body[4 * 3 + 1]), (body[7 * 3], body[7 * 3 + 1])
    full = {"people": [{"pose_keypoints_2d": body,
                        "hand_right_keypoints_2d": hand(lw, 40, rng),
                        "hand_left_keypoints_2d": hand(rw, 40, rng, missing=3),
                        "face_keypoints_2d": face((body[0], body[1] + 6), 22, rng)}],
            "canvas_width": 900, "canvas_height": 700}
    for w, h in ((512, 512), (768, 512), (1024, 768)):
        out.append({"name": f"hands_face_{w}x{h}", "size": [w, h], "pose": full})
    two = {"people": [{"pose_keypoints_2d": standing(100, 60, 240, 480, missing=(3, 16))},
                      {"pose_keypoints_2d": standing(190, 40, 250, 500, missing=(9,)),
                       "hand_left_keypoints_2d": hand((300, 300), 30, rng, missing=2),
                       "face_keypoints_2d": face((315, 90), 18, rng)},
                      {"pose_keypoints_2d": []}],
           "canvas_width": 640, "canvas_height": 600}
    out.append({"name": "two_people_512x512", "size": [512, 512], "pose": two, "several": True})
    for i, (w, h) in enumerate(((512, 512), (576, 448), (448, 640))):
        cw, ch = rng.choice(((512, 512), (1000, 700), (333, 777)))
        pose = {"people": [{"pose_keypoints_2d": random_person(rng, cw, ch)} for _ in range(2)],
                "canvas_width": cw, "canvas_height": ch}
        out.append({"name": f"random_{i}_{w}x{h}", "size": [w, h], "pose": pose, "several": True})
    return out


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--aux", type=Path, required=True, help="a --target folder holding controlnet_aux 0.0.10")
    parser.add_argument("--v11", type=Path, required=True, help="ControlNet-v1-1-nightly annotator/openpose/util.py")
    args = parser.parse_args(argv)
    aux = load_aux_util(args.aux)
    v11 = load_module("v11_openpose_util", args.v11)
    OUT.mkdir(parents=True, exist_ok=True)
    index: list[dict[str, Any]] = []
    for case in cases():
        reference = draw_v11(v11, case)
        other = draw_aux(aux, case)
        same = bool(np.array_equal(reference, other))
        if not case.get("several"):
            assert same, f"{case['name']}: the two annotators disagree on one person"
        cv2.imwrite(str(OUT / f"{case['name']}.png"), reference[:, :, ::-1])  # RGB canvas -> BGR file
        index.append({"name": case["name"], "size": case["size"], "pose": case["pose"],
                      "controlnet_aux_identical": same})
        print(f"{case['name']}: {int((reference.sum(axis=2) > 0).sum())} lit pixels; controlnet-aux identical: {same}")
    (OUT / "cases.json").write_text(json.dumps(index, indent=1) + "\n", encoding="utf-8")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
