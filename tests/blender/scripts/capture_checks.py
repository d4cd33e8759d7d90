"""Depth and pose capture on scenes with known answers (run by tests/blender/test_capture.py).

Analytic expectations are computed here from Blender's documented camera model (lens, sensor,
fit, shift), independently of the add-on's own frame code; the pose check also compares with
Blender's own ``bpy_extras.object_utils.world_to_camera_view``.
"""

import json
import math
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[3]
sys.path[:0] = [str(REPO / "blender_addon"), str(REPO / "sdk")]

import bpy  # noqa: E402
import numpy as np  # noqa: E402
from bpy_extras.object_utils import world_to_camera_view  # noqa: E402
from brushwork_blender import capture, pose  # noqa: E402
from mathutils import Euler, Matrix, Vector  # noqa: E402
from truth import ray_cast_depth  # noqa: E402

out = {}


def fresh():
    bpy.ops.wm.read_factory_settings(use_empty=True)
    return bpy.context.scene


def add_camera(scene, location, rotation, **data):
    cam_data = bpy.data.cameras.new("cam")
    for key, value in data.items():
        setattr(cam_data, key, value)
    cam = bpy.data.objects.new("cam", cam_data)
    scene.collection.objects.link(cam)
    cam.location, cam.rotation_euler = location, rotation
    scene.camera = cam
    return cam


def add_plane(scene, size, location=(0, 0, 0), rotation=(0, 0, 0)):
    bpy.ops.mesh.primitive_plane_add(size=size, location=location, rotation=rotation)
    return bpy.context.active_object


def pixel_plane_coords(w, h, fit_w, fit_h, shift=(0.0, 0.0)):
    """Frame-plane (x, y) at every pixel centre, row 0 at the top: the textbook formula."""
    x = ((np.arange(w) + 0.5) / w - 0.5) * fit_w + shift[0]
    y = (0.5 - (np.arange(h) + 0.5) / h) * fit_h + shift[1]
    return np.meshgrid(x, y)


def rel_err(got, want):
    mask = np.isfinite(want)
    return float(np.max(np.abs(got[mask] - want[mask]) / want[mask])) if mask.any() else 0.0


# 1. perpendicular plane at distance 10, perspective: z-depth is 10 everywhere (ray length is not)
scene = fresh()
add_plane(scene, 1000)
cam = add_camera(scene, (0, 0, 10), (0, 0, 0))
depth = capture.camera_depth(scene, cam, (128, 96))
out["perp_shape"] = list(depth.shape)
out["perp_dtype"] = str(depth.dtype)
out["perp_rel_err"] = rel_err(depth, np.full(depth.shape, 10.0))

# 2. tilted plane (normal rotated 30° about X), camera rotated and shifted, vertical sensor fit,
#    portrait size. Analytic: ray through each pixel of the textbook frame meets the plane n·p = 0.
scene = fresh()
add_plane(scene, 1000, rotation=(math.radians(30), 0, 0))
cam = add_camera(scene, (0.5, -1.0, 12), (math.radians(10), math.radians(-5), math.radians(20)),
                 lens=35.0, sensor_fit="VERTICAL", sensor_height=24.0, shift_x=0.1, shift_y=-0.05)
w, h = 64, 96
depth = capture.camera_depth(scene, cam, (w, h))
fit_h = 24.0 / 35.0
fit_w = fit_h * w / h
gx, gy = pixel_plane_coords(w, h, fit_w, fit_h, (0.1 * fit_h, -0.05 * fit_h))
rot = np.array(Euler((math.radians(10), math.radians(-5), math.radians(20))).to_matrix())
d_local = np.stack([gx, gy, -np.ones_like(gx)], axis=-1)
d_world = d_local @ rot.T
n = np.array(Matrix.Rotation(math.radians(30), 3, "X") @ Vector((0, 0, 1)))
c = np.array([0.5, -1.0, 12.0])
t = -(n @ c) / (d_world @ n)  # d has local z = -1, so t is the z-depth
out["tilt_rel_err"] = rel_err(depth, t)
out["tilt_depth_range"] = [float(depth.min()), float(depth.max())]
out["tilt_all_hit"] = bool(np.isfinite(depth).all())

# 3. orthographic camera over a tilted, finite plane: analytic depth where it is hit, inf elsewhere
scene = fresh()
add_plane(scene, 4.0, rotation=(0, math.radians(20), 0))
cam = add_camera(scene, (0, 0, 5), (0, 0, 0), type="ORTHO", ortho_scale=8.0)
w, h = 80, 64
depth = capture.camera_depth(scene, cam, (w, h))
gx, gy = pixel_plane_coords(w, h, 8.0, 8.0 * h / w)
n = np.array(Matrix.Rotation(math.radians(20), 3, "Y") @ Vector((0, 0, 1)))
# ray o + s(0,0,-1), o = (gx, gy, 5): n·o - s n_z = 0
want = (n[0] * gx + n[1] * gy + n[2] * 5.0) / n[2]
# the plane's half-size 2 along its own x spans |world x| < 2 cos 20°; keep clear of the edges
along = np.abs(gx / math.cos(math.radians(20)))
inside = (along < 2.0 - 0.05) & (np.abs(gy) < 2.0 - 0.05)
outside = (along > 2.0 + 0.05) | (np.abs(gy) > 2.0 + 0.05)
out["ortho_rel_err_inside"] = rel_err(np.where(inside, depth, np.nan), np.where(inside, want, np.nan))
out["ortho_inside_all_finite"] = bool(np.isfinite(depth[inside]).all())
out["ortho_outside_all_inf"] = bool(np.isinf(depth[outside]).all())
out["ortho_counts"] = [int(inside.sum()), int(outside.sum())]

# 4. nothing in front of the camera: all inf; a plane behind the camera is not seen
scene = fresh()
add_plane(scene, 100, location=(0, 0, 20))
cam = add_camera(scene, (0, 0, 10), (0, 0, 0))
depth = capture.camera_depth(scene, cam, (32, 24))
out["empty_all_inf"] = bool(np.isinf(depth).all())
near, far = capture.depth_range(depth)
out["empty_range"] = [near, far]

# 5. beyond clip_end is not seen; raw bytes are little-endian float32, top row first
scene = fresh()
add_plane(scene, 1000, rotation=(math.radians(45), 0, 0))
cam = add_camera(scene, (0, 0, 10), (0, 0, 0), clip_end=11.0)
depth = capture.camera_depth(scene, cam, (32, 32))
out["clip_max_finite"] = float(depth[np.isfinite(depth)].max())
out["clip_has_inf"] = bool(np.isinf(depth).any())
raw = capture.depth_signal_bytes(depth)
back = np.frombuffer(raw, dtype="<f4").reshape(32, 32)
out["bytes_len"] = len(raw)
out["bytes_roundtrip"] = bool(np.array_equal(back, depth))
# The plane rises towards +Y (top of the image): the top row is near, the bottom row beyond clip.
out["top_row_finite"] = bool(np.isfinite(depth[0]).all())
out["bottom_row_inf"] = bool(np.isinf(depth[-1]).all())

# 5b. the evaluated scene counts: a Displace modifier lifts the plane by 1 (depth 9, not 10),
#     and a camera parented to a moved empty sees from where the empty puts it
scene = fresh()
plane = add_plane(scene, 1000)
mod = plane.modifiers.new("lift", "DISPLACE")
mod.strength, mod.mid_level, mod.direction = 1.0, 0.0, "Z"
cam = add_camera(scene, (0, 0, 10), (0, 0, 0))
depth = capture.camera_depth(scene, cam, (16, 12))
out["modifier_rel_err"] = rel_err(depth, np.full(depth.shape, 9.0))
rig = bpy.data.objects.new("rig", None)
scene.collection.objects.link(rig)
cam.parent = rig
rig.location = (0, 0, 5)
depth = capture.camera_depth(scene, cam, (16, 12))
out["parent_rel_err"] = rel_err(depth, np.full(depth.shape, 14.0))

# 5c. the render's depth agrees with an independent truth on a busy scene: Blender's own
#     scene.ray_cast through every pixel centre (computed here), with modifiers, a collection
#     instance and an object hidden from the render (absent from both); viewport-only hiding is
#     the render's business (see the multiview checks: still rendered).
scene = fresh()
add_plane(scene, 50)
bpy.ops.mesh.primitive_uv_sphere_add(location=(0, 0, 1.5))
bpy.ops.mesh.primitive_monkey_add(location=(2.5, 0.5, 1.2))
sub = bpy.context.active_object.modifiers.new("sub", "SUBSURF")
sub.levels = sub.render_levels = 1  # the render uses render_levels, ray_cast the viewport's: make them one
bpy.ops.mesh.primitive_cube_add(location=(-2.5, 0, 5))
bpy.context.active_object.hide_set(True)
bpy.context.active_object.hide_render = True  # hidden from the render: not seen
coll = bpy.data.collections.new("props")
bpy.ops.mesh.primitive_cone_add(location=(0, 0, 0))
cone = bpy.context.active_object
for c in list(cone.users_collection):
    c.objects.unlink(cone)
coll.objects.link(cone)
holder = bpy.data.objects.new("holder", None)
holder.instance_type, holder.instance_collection = "COLLECTION", coll
holder.location = (-1.0, -2.0, 1.0)
scene.collection.objects.link(holder)
cam = add_camera(scene, (1, -9, 7), (math.radians(55), 0, math.radians(8)))
fast = capture.camera_depth(scene, cam, (64, 48))
slow = ray_cast_depth(scene, cam, (64, 48))
out["busy_same_misses"] = bool(np.array_equal(np.isinf(fast), np.isinf(slow)))
both = np.isfinite(fast) & np.isfinite(slow)
out["busy_max_rel_diff"] = float(np.max(np.abs(fast[both] - slow[both]) / slow[both]))
# silhouettes: a pixel centre within float noise of an edge may go either way; count them
out["busy_mismatch_pixels"] = int((np.abs(fast[both] - slow[both]) / slow[both] > 1e-3).sum())
out["busy_hit_fraction"] = float(both.mean())
out["busy_depth_spread"] = float(fast[both].max() - fast[both].min())
# the instanced cone is seen: some pixel's depth equals a ray hit on it (compare with it removed)
holder.instance_collection = None
without = capture.camera_depth(scene, cam, (64, 48))
out["instance_changes_pixels"] = int((np.abs(without - fast) > 1e-3).sum())

# 6. bad input: a non-camera object is a clear ValueError
try:
    capture.camera_depth(scene, bpy.data.objects["Plane"], (8, 8))
    out["non_camera_error"] = ""
except ValueError as exc:
    out["non_camera_error"] = str(exc)

# 7. pose: an armature with Rigify names; keypoints must land where Blender's own
#    world_to_camera_view puts them (render resolution = capture size, so the frames agree)
scene = fresh()
cam = add_camera(scene, (0.3, -8.0, 1.2), (math.radians(88), 0, math.radians(4)), lens=40.0, shift_x=0.05)
w, h = 96, 128
scene.render.resolution_x, scene.render.resolution_y = w, h
arm_data = bpy.data.armatures.new("rig")
arm = bpy.data.objects.new("rig", arm_data)
scene.collection.objects.link(arm)
arm.location = (0.2, 0.0, 0.1)
bpy.context.view_layer.objects.active = arm
bpy.ops.object.mode_set(mode="EDIT")
joints = {
    "DEF-spine.004": ((0, 0, 1.5), (0, 0, 1.7)),
    "DEF-spine.006": ((0, 0, 1.7), (0, 0, 2.0)),
    "DEF-upper_arm.R": ((-0.2, 0, 1.45), (-0.5, 0, 1.2)),
    "DEF-forearm.R": ((-0.5, 0, 1.2), (-0.7, 0, 0.95)),
    "DEF-hand.R": ((-0.7, 0, 0.95), (-0.75, 0, 0.85)),
    "DEF-upper_arm.L": ((0.2, 0, 1.45), (0.5, 0, 1.2)),
    "DEF-thigh.L": ((0.1, 0, 0.9), (0.12, 0, 0.5)),
    "DEF-shin.L": ((0.12, 0, 0.5), (0.13, 0, 0.1)),
    "DEF-foot.L": ((0.13, 0, 0.1), (0.13, -0.15, 0.0)),
}
for name, (head, tail) in joints.items():
    bone = arm_data.edit_bones.new(name)
    bone.head, bone.tail = head, tail
for child, parent in (("DEF-shin.L", "DEF-thigh.L"), ("DEF-foot.L", "DEF-shin.L")):
    arm_data.edit_bones[child].parent = arm_data.edit_bones[parent]
    arm_data.edit_bones[child].use_connect = True
bpy.ops.object.mode_set(mode="POSE")
# pose the left thigh: rotate it so the knee moves (the pose, not the rest position, must count)
arm.pose.bones["DEF-thigh.L"].rotation_mode = "XYZ"
arm.pose.bones["DEF-thigh.L"].rotation_euler = (math.radians(-40), 0, math.radians(40))
bpy.ops.object.mode_set(mode="OBJECT")
bpy.context.view_layer.update()

data = pose.capture_openpose(scene, cam, [arm], (w, h), pose.RIGIFY)
kp = np.array(data["people"][0]["pose_keypoints_2d"]).reshape(18, 3)
expected = {}
for key, (bone, end) in {"neck": ("DEF-spine.004", "head"), "right_shoulder": ("DEF-upper_arm.R", "head"),
                         "right_elbow": ("DEF-forearm.R", "head"), "right_wrist": ("DEF-hand.R", "head"),
                         "left_shoulder": ("DEF-upper_arm.L", "head"), "left_hip": ("DEF-thigh.L", "head"),
                         "left_knee": ("DEF-shin.L", "head"), "left_ankle": ("DEF-foot.L", "head"),
                         "nose": ("DEF-spine.006", 0.35)}.items():
    pb = arm.pose.bones[bone]
    local = pb.head.lerp(pb.tail, end) if isinstance(end, float) else getattr(pb, end)
    world = arm.matrix_world @ local
    ndc = world_to_camera_view(scene, cam, world)
    expected[key] = [ndc.x * w, (1.0 - ndc.y) * h]
got = {key: kp[pose.KEYPOINTS.index(key)].tolist() for key in expected}
out["pose_max_px_err"] = max(math.dist(got[k][:2], expected[k]) for k in expected)
out["pose_seen"] = {k: got[k][2] for k in expected}
out["pose_unmapped_zero"] = [kp[pose.KEYPOINTS.index(k)].tolist() for k in ("right_eye", "left_ear", "right_hip")]
out["pose_canvas"] = [data["canvas_width"], data["canvas_height"]]
# the posed knee differs from the rest knee (so the pose was read, not the rest pose)
rest_knee = arm.matrix_world @ arm.data.bones["DEF-shin.L"].head_local
rest_ndc = world_to_camera_view(scene, cam, rest_knee)
out["pose_knee_moved_px"] = math.dist(got["left_knee"][:2], [rest_ndc.x * w, (1 - rest_ndc.y) * h])
out["auto_map"] = pose.pick_bone_map(arm)[0]

# a keypoint behind the camera gets confidence 0
arm.location = (0.2, -12.0, 0.1)  # the whole rig now behind the camera (camera at y=-8 looking +y)
bpy.context.view_layer.update()
data = pose.capture_openpose(scene, cam, [arm], (w, h), pose.RIGIFY)
out["behind_all_zero"] = all(c == 0 for c in data["people"][0]["pose_keypoints_2d"][2::3])

# Mixamo names with another prefix, found by the auto map
arm2_data = bpy.data.armatures.new("mixamo")
arm2 = bpy.data.objects.new("mixamo", arm2_data)
scene.collection.objects.link(arm2)
bpy.context.view_layer.objects.active = arm2
bpy.ops.object.mode_set(mode="EDIT")
for name, (head, tail) in {"mixamorig1:Neck": ((0, 0, 1.5), (0, 0, 1.7)), "mixamorig1:Head": ((0, 0, 1.7), (0, 0, 2.0)),
                           "mixamorig1:LeftArm": ((0.2, 0, 1.45), (0.5, 0, 1.2)),
                           "mixamorig1:RightUpLeg": ((-0.1, 0, 0.9), (-0.12, 0, 0.5))}.items():
    bone = arm2_data.edit_bones.new(name)
    bone.head, bone.tail = head, tail
bpy.ops.object.mode_set(mode="OBJECT")
bpy.context.view_layer.update()
out["mixamo_auto"] = pose.pick_bone_map(arm2)[0]
data = pose.capture_openpose(scene, cam, [arm2], (w, h))
kp = np.array(data["people"][0]["pose_keypoints_2d"]).reshape(18, 3)
ndc = world_to_camera_view(scene, cam, arm2.matrix_world @ Vector((0.2, 0, 1.45)))
out["mixamo_left_shoulder_err"] = math.dist(kp[pose.KEYPOINTS.index("left_shoulder")][:2], [ndc.x * w, (1 - ndc.y) * h])
out["mixamo_seen"] = int((kp[:, 2] > 0).sum())

# bone maps typed by users: errors name the problem
errors = {}
for label, text in {"json": "{not json", "key": '{"elbow": ["x:head"]}', "end": '{"neck": ["spine:middle"]}',
                    "shape": '{"neck": 3}'}.items():
    try:
        pose.parse_bone_map(text)
        errors[label] = ""
    except pose.BoneMapError as exc:
        errors[label] = str(exc)
out["bonemap_errors"] = errors
out["bonemap_ok"] = pose.parse_bone_map(json.dumps({"neck": ["Spine2:tail", "Neck:0.25"]}))

print("RESULT: " + json.dumps(out))
