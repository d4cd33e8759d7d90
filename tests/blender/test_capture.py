"""capture.camera_depth (the render's depth) and pose capture against analytic answers, in real bpy 5.0.1."""

from __future__ import annotations

import pytest

pytestmark = pytest.mark.xdist_group("blender-capture")


@pytest.fixture(scope="module")
def checks(bpy_run):
    return bpy_run("capture_checks.py")


def test_perpendicular_plane_is_z_depth_not_ray_length(checks):
    # Corner rays are ~10% longer than the axis: only true z-depth is within 1% everywhere.
    assert checks["perp_shape"] == [96, 128]
    assert checks["perp_dtype"] == "float32"
    assert checks["perp_rel_err"] < 0.01


def test_tilted_plane_with_rotated_shifted_camera_and_vertical_fit(checks):
    assert checks["tilt_all_hit"]
    lo, hi = checks["tilt_depth_range"]
    assert hi - lo > 1.0  # really tilted: depth varies across the frame
    assert checks["tilt_rel_err"] < 0.01


def test_orthographic_camera_and_inf_where_nothing_is_hit(checks):
    inside, outside = checks["ortho_counts"]
    assert inside > 100 and outside > 100
    assert checks["ortho_inside_all_finite"]
    assert checks["ortho_outside_all_inf"]
    assert checks["ortho_rel_err_inside"] < 0.01


def test_empty_view_and_surfaces_behind_the_camera(checks):
    assert checks["empty_all_inf"]
    assert checks["empty_range"] == [None, None]


def test_clip_end_and_raw_signal_layout(checks):
    assert checks["clip_max_finite"] <= 11.0
    assert checks["clip_has_inf"]
    assert checks["bytes_len"] == 32 * 32 * 4
    assert checks["bytes_roundtrip"]
    # row 0 is the top of the picture
    assert checks["top_row_finite"] and checks["bottom_row_inf"]


def test_depth_sees_the_evaluated_scene_modifiers_and_parents(checks):
    assert checks["modifier_rel_err"] < 0.01
    assert checks["parent_rel_err"] < 0.01


def test_render_depth_agrees_with_blenders_ray_cast_on_a_busy_scene(checks):
    assert checks["busy_same_misses"]
    assert checks["busy_mismatch_pixels"] == 0
    # float32 in Cycles and a pixel centre within 0.005 px (filter width 0.01) on steep surfaces
    assert checks["busy_max_rel_diff"] < 5e-4
    assert checks["busy_hit_fraction"] > 0.5 and checks["busy_depth_spread"] > 1.0
    assert checks["instance_changes_pixels"] > 5  # collection instances are part of the depth


def test_non_camera_is_a_clear_error(checks):
    assert checks["non_camera_error"] == "'Plane' is not a camera object"


def test_pose_keypoints_land_where_blender_projects_the_bones(checks):
    assert checks["pose_canvas"] == [96, 128]
    assert checks["pose_max_px_err"] < 0.01
    assert all(c == 1.0 for c in checks["pose_seen"].values())
    # the posed knee, not the rest position, is what is captured
    assert checks["pose_knee_moved_px"] > 2.0


def test_pose_unmapped_and_hidden_keypoints_have_zero_confidence(checks):
    assert checks["pose_unmapped_zero"] == [[0.0, 0.0, 0.0]] * 3
    assert checks["behind_all_zero"]


def test_bone_maps_rigify_mixamo_and_any_mixamo_prefix(checks):
    assert checks["auto_map"] == "RIGIFY"
    assert checks["mixamo_auto"] == "MIXAMO"
    assert checks["mixamo_left_shoulder_err"] < 0.01
    assert checks["mixamo_seen"] == 4  # neck, nose (head midpoint), left shoulder, right hip


def test_user_bone_map_errors_name_the_problem(checks):
    errors = checks["bonemap_errors"]
    assert "not valid JSON" in errors["json"]
    assert "unknown keypoint 'elbow'" in errors["key"]
    assert "'middle' is not head, tail or a number" in errors["end"]
    assert "neck must be a list" in errors["shape"]
    assert checks["bonemap_ok"] == {"neck": ["Spine2:tail", "Neck:0.25"]}
