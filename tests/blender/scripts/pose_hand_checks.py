"""Hand keypoints from finger bones (run by tests/blender/test_pose_hands.py).

A Rigify-named arm and hand with all five finger chains, and a Mixamo-named one; the captured
``hand_*_keypoints_2d`` must land where Blender's own ``world_to_camera_view`` projects the bone
ends, in OpenPose's hand order (wrist, then thumb, index, middle, ring, little, base to tip).
"""

import json
import math
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[3]
sys.path[:0] = [str(REPO / "blender_addon"), str(REPO / "sdk")]

import bpy  # noqa: E402
from bpy_extras.object_utils import world_to_camera_view  # noqa: E402
from brushwork_blender import pose  # noqa: E402

out = {}
bpy.ops.wm.read_factory_settings(use_empty=True)
scene = bpy.context.scene
w, h = 128, 96
scene.render.resolution_x, scene.render.resolution_y = w, h
cam = bpy.data.objects.new("cam", bpy.data.cameras.new("cam"))
scene.collection.objects.link(cam)
cam.location, cam.rotation_euler = (0.0, -3.0, 1.0), (math.radians(90), 0, 0)
scene.camera = cam


def armature(name: str, bones: dict) -> bpy.types.Object:
    obj = bpy.data.objects.new(name, bpy.data.armatures.new(name))
    scene.collection.objects.link(obj)
    bpy.context.view_layer.objects.active = obj
    bpy.ops.object.mode_set(mode="EDIT")
    for bone, (head, tail) in bones.items():
        eb = obj.data.edit_bones.new(bone)
        eb.head, eb.tail = head, tail
    bpy.ops.object.mode_set(mode="OBJECT")
    return obj


def projected(obj, bone: str, end: str) -> list:
    pb = obj.pose.bones[bone]
    ndc = world_to_camera_view(scene, cam, obj.matrix_world @ getattr(pb, end))
    return [ndc.x * w, (1.0 - ndc.y) * h]


# Rigify: hand + thumb.01-03 and f_<finger>.01-03 on the left side
rigify = {"DEF-spine.004": ((0, 0, 1.4), (0, 0, 1.6)), "DEF-upper_arm.L": ((0.2, 0, 1.4), (0.4, 0, 1.2)),
          "DEF-forearm.L": ((0.4, 0, 1.2), (0.55, 0, 1.0)), "DEF-hand.L": ((0.55, 0, 1.0), (0.6, 0, 0.92))}
chains = {"thumb": -0.06, "f_index": -0.03, "f_middle": 0.0, "f_ring": 0.03, "f_pinky": 0.06}
for chain, dx in chains.items():
    x0, z0 = 0.6 + dx, 0.92
    for j in range(3):
        rigify[f"DEF-{chain}.0{j + 1}.L"] = ((x0, 0, z0 - 0.03 * j), (x0, 0, z0 - 0.03 * (j + 1)))
arm = armature("rig", rigify)
data = pose.capture_openpose(scene, cam, [arm], (w, h), pose.RIGIFY)
person = data["people"][0]
hand = person.get("hand_left_keypoints_2d", [])
out["rigify_fields"] = sorted(person)
out["rigify_len"] = len(hand)
expected = [projected(arm, "DEF-hand.L", "head")]
for chain in chains:
    expected += [projected(arm, f"DEF-{chain}.0{j + 1}.L", "head") for j in range(3)]
    expected.append(projected(arm, f"DEF-{chain}.03.L", "tail"))
got = [hand[3 * i:3 * i + 2] for i in range(21)]
out["rigify_max_px_err"] = max(math.dist(a, b) for a, b in zip(got, expected, strict=True))
out["rigify_seen"] = [hand[3 * i + 2] for i in range(21)]
body = person["pose_keypoints_2d"]
out["wrist_is_body_wrist"] = hand[:2] == body[7 * 3:7 * 3 + 2]

# Mixamo: LeftHand + LeftHand<Finger>1..4 (4 = tip)
mixamo = {"mixamorig:LeftHand": ((0.55, 0, 1.0), (0.6, 0, 0.92))}
for f, finger in enumerate(("Thumb", "Index", "Middle", "Ring", "Pinky")):
    for j in range(4):
        x = 0.54 + 0.03 * f
        mixamo[f"mixamorig:LeftHand{finger}{j + 1}"] = ((x, 0, 0.92 - 0.03 * j), (x, 0, 0.92 - 0.03 * (j + 1)))
arm2 = armature("mixamo", mixamo)
data = pose.capture_openpose(scene, cam, [arm2], (w, h), pose.MIXAMO)
hand = data["people"][0].get("hand_left_keypoints_2d", [])
expected = [projected(arm2, "mixamorig:LeftHand", "head")]
for finger in ("Thumb", "Index", "Middle", "Ring", "Pinky"):
    expected += [projected(arm2, f"mixamorig:LeftHand{finger}{j + 1}", "head") for j in range(4)]
out["mixamo_max_px_err"] = max(math.dist(hand[3 * i:3 * i + 2], expected[i]) for i in range(21))

# a rig with a hand bone but no fingers: body only, as before
arm3 = armature("plain", {"DEF-hand.R": ((-0.5, 0, 1.0), (-0.55, 0, 0.9))})
out["plain_fields"] = sorted(pose.capture_openpose(scene, cam, [arm3], (w, h), pose.RIGIFY)["people"][0])
out["bonemap_hand_key"] = pose.parse_bone_map(json.dumps({"hand_left_8": ["Index3:tail"]}))
print("RESULT: " + json.dumps(out))
