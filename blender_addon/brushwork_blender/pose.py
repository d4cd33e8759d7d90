"""Armature → OpenPose 18-keypoint JSON, as the camera sees it.

A *bone map* says, for each OpenPose keypoint (COCO order), where on the armature it sits: a list
of candidates tried in order, each ``"BONE:head"``, ``"BONE:tail"`` or ``"BONE:0.35"`` (that
fraction of the way from head to tail). Maps for Rigify (generated DEF- bones, then metarig names)
and Mixamo (any ``prefix:`` such as ``mixamorig:`` or ``mixamorig1:``) are built in; users edit a
copy in a Text datablock (``Brushwork Bone Map``), written as JSON {keypoint name: [candidates]}.

A keypoint whose bones are all missing, that lies behind the camera, or outside the frame gets
confidence 0 (OpenPose's "not seen"), so the engine skips it.

Hands: a map may also place OpenPose's 21 hand keypoints (``hand_left_0`` .. ``hand_left_20``,
``hand_right_0`` .. ``hand_right_20``: wrist, then thumb and each finger from base to tip). The
built-in maps use Rigify's and Mixamo's finger bones; a rig with fingers then captures
``hand_left/right_keypoints_2d``, which the engine draws as the annotator does. Rigs without
finger bones capture bodies only, as before.
"""

from __future__ import annotations

import json

import numpy as np

from . import sdk
from .capture import CameraFrame, camera_frame, evaluated_depsgraph

KEYPOINTS = sdk.openpose.KEYPOINTS  # the 18 OpenPose names, shared with the engine and canvas
HAND_SIDES = (("left", "hand_left_keypoints_2d"), ("right", "hand_right_keypoints_2d"))
HAND_KEYS = {side: tuple(f"hand_{side}_{i}" for i in range(21)) for side, _ in HAND_SIDES}
ALL_KEYS = (*KEYPOINTS, *HAND_KEYS["left"], *HAND_KEYS["right"])
_FINGERS = ("thumb", "index", "middle", "ring", "pinky")


def _rigify_hand(side: str) -> dict[str, list[str]]:
    """OpenPose hand points on Rigify's finger chains (thumb.01-03, f_index/middle/ring/pinky.01-03)."""
    s = "L" if side == "left" else "R"

    def at(bone: str, end: str) -> list[str]:
        return [f"{prefix}{bone}.{s}:{end}" for prefix in ("DEF-", "ORG-", "")]

    out = {f"hand_{side}_0": at("hand", "head")}
    for f, finger in enumerate(_FINGERS):
        chain = "thumb" if finger == "thumb" else f"f_{finger}"
        base = 1 + 4 * f
        for j in range(3):
            out[f"hand_{side}_{base + j}"] = at(f"{chain}.0{j + 1}", "head")
        out[f"hand_{side}_{base + 3}"] = at(f"{chain}.03", "tail")
    return out


def _mixamo_hand(side: str) -> dict[str, list[str]]:
    """OpenPose hand points on Mixamo's ``{Side}Hand{Finger}1..4`` bones (4 is the tip)."""
    s = "Left" if side == "left" else "Right"
    out = {f"hand_{side}_0": [f"mixamorig:{s}Hand:head"]}
    for f, finger in enumerate(_FINGERS):
        for j in range(4):
            out[f"hand_{side}_{1 + 4 * f + j}"] = [f"mixamorig:{s}Hand{finger.capitalize()}{j + 1}:head"]
    return out


def _rigify_side(side: str) -> dict[str, list[str]]:
    s = "R" if side == "right" else "L"
    def both(bone, end="head"):
        return [f"DEF-{bone}.{s}:{end}", f"ORG-{bone}.{s}:{end}", f"{bone}.{s}:{end}"]
    return {
        f"{side}_shoulder": both("upper_arm"),
        f"{side}_elbow": both("forearm"),
        f"{side}_wrist": both("hand"),
        f"{side}_hip": both("thigh"),
        f"{side}_knee": both("shin"),
        f"{side}_ankle": both("foot"),
        f"{side}_eye": both("eye"),
        f"{side}_ear": both("ear"),
    }


RIGIFY = {
    "nose": ["DEF-nose.002:head", "ORG-nose.002:head", "nose.002:head", "DEF-spine.006:0.35", "spine.006:0.35"],
    "neck": ["DEF-spine.004:head", "ORG-spine.004:head", "spine.004:head"],
    **_rigify_side("right"),
    **_rigify_side("left"),
    **_rigify_hand("right"),
    **_rigify_hand("left"),
}


def _mixamo_side(side: str) -> dict[str, list[str]]:
    s = "Right" if side == "right" else "Left"
    return {
        f"{side}_shoulder": [f"mixamorig:{s}Arm:head"],
        f"{side}_elbow": [f"mixamorig:{s}ForeArm:head"],
        f"{side}_wrist": [f"mixamorig:{s}Hand:head"],
        f"{side}_hip": [f"mixamorig:{s}UpLeg:head"],
        f"{side}_knee": [f"mixamorig:{s}Leg:head"],
        f"{side}_ankle": [f"mixamorig:{s}Foot:head"],
        f"{side}_eye": [f"mixamorig:{s}Eye:head"],
        f"{side}_ear": [],  # Mixamo rigs have no ear bones
    }


MIXAMO = {
    "nose": ["mixamorig:Head:0.5"],
    "neck": ["mixamorig:Neck:head"],
    **_mixamo_side("right"),
    **_mixamo_side("left"),
    **_mixamo_hand("right"),
    **_mixamo_hand("left"),
}

BONE_MAPS = {"RIGIFY": RIGIFY, "MIXAMO": MIXAMO}
BONE_MAP_TEXT = "Brushwork Bone Map"


class BoneMapError(ValueError):
    pass


def parse_bone_map(text: str) -> dict[str, list[str]]:
    """A user's JSON bone map → validated dict. Unknown keypoints and bad entries are errors."""
    try:
        data = json.loads(text)
    except ValueError as exc:
        raise BoneMapError(f"bone map is not valid JSON ({exc})") from None
    if not isinstance(data, dict):
        raise BoneMapError("bone map must be a JSON object {keypoint: [\"BONE:head\", ...]}")
    out = {}
    for key, value in data.items():
        if key not in ALL_KEYS:
            raise BoneMapError(f"bone map: unknown keypoint {key!r} (known: {', '.join(KEYPOINTS)}, "
                               "hand_left_0..20, hand_right_0..20)")
        if isinstance(value, str):
            value = [value]
        if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
            raise BoneMapError(f"bone map: {key} must be a list of \"BONE:head|tail|FRACTION\" strings")
        for v in value:
            _split_candidate(v, key)
        out[key] = value
    return out


def _split_candidate(spec: str, key: str = "") -> tuple[str, float]:
    bone, sep, where = spec.rpartition(":")
    if not sep or not bone:
        raise BoneMapError(f"bone map: {key} entry {spec!r} must look like BONE:head, BONE:tail or BONE:0.5")
    if where == "head":
        return bone, 0.0
    if where == "tail":
        return bone, 1.0
    try:
        t = float(where)
    except ValueError:
        raise BoneMapError(f"bone map: {key} entry {spec!r}: {where!r} is not head, tail or a number") from None
    return bone, t


def _find_bone(pose_bones, name: str):
    bone = pose_bones.get(name)
    if bone is not None or ":" not in name:
        return bone
    # Mixamo exports differ in prefix (mixamorig:, mixamorig1:, ...): match on the part after ':'.
    suffix = name.split(":", 1)[1]
    for candidate in pose_bones:
        if candidate.name.rsplit(":", 1)[-1] == suffix:
            return candidate
    return None


def keypoints_world(armature, bone_map: dict[str, list[str]], depsgraph=None,
                    keys: tuple[str, ...] = KEYPOINTS) -> list[np.ndarray | None]:
    """World position of each of ``keys`` (the 18 body keypoints unless told; None where the
    map finds no bone).

    Reads the evaluated armature: the pose as constraints, drivers and actions leave it."""
    armature = armature.evaluated_get(depsgraph if depsgraph is not None else evaluated_depsgraph())
    matrix = np.array(armature.matrix_world, dtype=np.float64)
    pose_bones = armature.pose.bones
    points = []
    for key in keys:
        found = None
        for spec in bone_map.get(key, []):
            name, t = _split_candidate(spec, key)
            bone = _find_bone(pose_bones, name)
            if bone is None:
                continue
            local = np.array(bone.head) * (1.0 - t) + np.array(bone.tail) * t
            found = (matrix @ np.append(local, 1.0))[:3]
            break
        points.append(found)
    return points


def count_matches(armature, bone_map: dict[str, list[str]]) -> int:
    return sum(p is not None for p in keypoints_world(armature, bone_map))


def pick_bone_map(armature) -> tuple[str, dict[str, list[str]]]:
    """The built-in map that finds the most keypoints on this armature."""
    name = max(BONE_MAPS, key=lambda n: count_matches(armature, BONE_MAPS[n]))
    return name, BONE_MAPS[name]


def project_keypoints(frame: CameraFrame, points: list[np.ndarray | None]) -> list[float]:
    """OpenPose ``*_keypoints_2d``: [x, y, c] per point in pixels, c = 0 when unseen."""
    flat: list[float] = []
    for p in points:
        if p is None:
            flat += [0.0, 0.0, 0.0]
            continue
        (xy,), (depth,) = frame.project(p[None, :])
        inside = 0 <= xy[0] <= frame.width and 0 <= xy[1] <= frame.height
        if not np.isfinite(xy).all() or depth <= frame.clip_start or depth > frame.clip_end or not inside:
            flat += [0.0, 0.0, 0.0]
        else:
            flat += [float(xy[0]), float(xy[1]), 1.0]
    return flat


def capture_openpose(scene, camera, armatures, size: tuple[int, int], bone_map=None) -> dict:
    """OpenPose JSON for one or more armatures seen by ``camera`` on a ``size`` = (w, h) canvas.

    ``bone_map``: a dict, or None to pick the best built-in map per armature.
    """
    depsgraph = evaluated_depsgraph()
    frame = camera_frame(scene, camera, size, depsgraph)
    people = []
    for armature in armatures:
        if armature.type != "ARMATURE":
            raise ValueError(f"{armature.name!r} is not an armature")
        mapping = bone_map if bone_map is not None else pick_bone_map(armature)[1]
        person = {"pose_keypoints_2d": project_keypoints(frame, keypoints_world(armature, mapping, depsgraph))}
        for side, field in HAND_SIDES:
            hand = keypoints_world(armature, mapping, depsgraph, keys=HAND_KEYS[side])
            if any(p is not None for p in hand[1:]):  # rigs without finger bones: body only, as before
                person[field] = project_keypoints(frame, hand)
        people.append(person)
    return {"people": people, "canvas_width": frame.width, "canvas_height": frame.height}
