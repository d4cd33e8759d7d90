"""Hand keypoints captured from finger bones (Rigify and Mixamo names), in real bpy 5.0.1."""

from __future__ import annotations

import pytest

pytestmark = pytest.mark.xdist_group("blender-capture")


@pytest.fixture(scope="module")
def checks(bpy_run):
    return bpy_run("pose_hand_checks.py")


def test_rigify_finger_bones_give_openpose_hand_points_where_blender_projects_them(checks):
    assert checks["rigify_fields"] == ["hand_left_keypoints_2d", "pose_keypoints_2d"]
    assert checks["rigify_len"] == 63
    assert checks["rigify_max_px_err"] < 0.01
    assert checks["rigify_seen"] == [1.0] * 21
    assert checks["wrist_is_body_wrist"]


def test_mixamo_finger_bones(checks):
    assert checks["mixamo_max_px_err"] < 0.01


def test_rigs_without_fingers_capture_the_body_only(checks):
    assert checks["plain_fields"] == ["pose_keypoints_2d"]
    assert checks["bonemap_hand_key"] == {"hand_left_8": ["Index3:tail"]}
