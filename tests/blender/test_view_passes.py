"""A view's render passes (region masks, normal colours, the UI way of rendering) against truth
computed in scripts/view_pass_checks.py, in real bpy 5.0.1. No worker."""

from __future__ import annotations

import pytest

pytestmark = pytest.mark.xdist_group("blender-view-passes")


@pytest.fixture(scope="module")
def checks(bpy_run):
    return bpy_run("view_pass_checks.py", timeout=300)


def _no_exception(checks, step):
    assert f"{step}_exception" not in checks, checks[f"{step}_exception"]


def test_material_slot_masks_match_the_projected_faces_exactly(checks):
    _no_exception(checks, "regions")
    assert checks["region_materials"] == ["Red", "Top"]  # slot order; 'Base' has no prompt
    assert checks["region_shape"] == [96, 128]
    red, top = checks["region_truth_counts"]
    assert red > 150 and top > 3000
    assert checks["region_occluded_red_pixels"] > 50  # the occluder really hides part of the face
    assert checks["region_mismatch"] == 0  # every pixel centre, against analytic ray hits
    assert checks["pass_index_restored"] == [0, 0, 0]


def test_a_vertex_group_region_masks_its_faces_exactly_for_that_render_only(checks):
    assert checks["group_fields"] == [["Cube", "Front", "a wooden door"]]
    assert checks["group_truth_pixels"] > 300
    assert checks["group_mismatch"] == 0  # materials and the group together, every pixel centre
    assert checks["group_left_nothing"]  # no modifier, material or node group stays behind
    assert checks["group_recipe_prompts"] == ["red bricks", "green grass", "a wooden door"]


def test_a_vertex_group_region_of_a_uv_texture_is_its_faces_in_the_uv_layout(checks):
    _no_exception(checks, "uv_regions")
    assert checks["uv_region_prompts"] == ["blue paint"]
    assert checks["uv_region_mask_is_left_half"] == [True]  # the PNG bytes of the exact left half
    assert checks["uv_region_other_slot"] == 0  # no face of the group in another slot: no region


def test_a_render_hidden_object_with_a_region_material_is_not_in_its_mask(checks):
    assert checks["region_hidden_box_pixels"] > 100
    assert checks["region_red_on_hidden_box"] == 0


def test_the_recipe_regions_carry_the_masks_and_the_materials_prompts(checks):
    assert checks["recipe_regions"] == [{"prompt": "red bricks", "negative_prompt": "moss", "weight": 0.8},
                                        {"prompt": "green grass", "negative_prompt": "", "weight": 1.0}]
    assert checks["region_masks_equal_truth"] == [True, True]  # the PNG bytes of the truth's masks
    assert checks["region_mask_refs_match_uploads"] == [True, True]
    assert checks["recipe_region_prompts"] == ["red bricks", "green grass"]
    assert checks["unseen_regions"] == 0


def test_normal_map_colours_follow_normalbae_on_a_sphere(checks):
    _no_exception(checks, "normals")
    # the whole sphere against its analytic normals (camera space: red = -x, green = +y, blue = +z)
    assert checks["normal_straight_max_err"] < 0.01
    assert checks["normal_tilted_max_err"] < 0.01
    assert checks["normal_straight_background_black"] and checks["normal_tilted_background_black"]
    left, right = checks["sphere_left_rgb"], checks["sphere_right_rgb"]
    assert left[0] > 0.9 and right[0] < 0.1  # facing left is red
    assert checks["sphere_top_rgb"][1] > 0.9  # facing up is green
    assert checks["sphere_centre_rgb"][2] > 0.99  # facing the camera is blue
    assert checks["plane_facing_rgb_range"] == [[0.5, 0.5], pytest.approx([0.5, 0.5]), pytest.approx([1.0, 1.0])]


def test_the_ui_way_renders_only_from_the_pump_and_restores_the_scene(checks):
    _no_exception(checks, "ui")
    # nothing rendered inside request(); the scene untouched until the render starts
    assert checks["ui_after_request"] == [1, 0, 0, "BLENDER_EEVEE"]
    assert checks["ui_started_with"] == [["CYCLES", 64, "view"]]  # set up only for the render
    # start the job; when it is over restore the scene and start the reader thread; hand over
    assert checks["ui_polls"] >= 3
    assert checks["ui_error"] == ""
    assert checks["ui_same_as_sync"]
    assert checks["ui_restored"] == ["BLENDER_EEVEE", 1920, True]
    assert checks["ui_main_thread_parts"] == ["main_thread", "read", "setup"]


def test_a_camera_deleted_before_its_render_is_one_line_and_changes_nothing(checks):
    gone, error, pending, engine, groups = checks["ui_gone"]
    assert gone and error == "camera 'view' or its scene is gone"
    assert pending == 0 and engine == "BLENDER_EEVEE" and groups == 0


def test_cancel_drops_a_waiting_render_and_reads_nothing_back_from_a_running_one(checks):
    assert checks["ui_cancel_waiting"] == [1, True, "cancelled", 0]
    assert checks["ui_cancel_rendering"] == [True, "cancelled", 0, "BLENDER_EEVEE"]


def test_pass_files_read_by_numpy_equal_blenders_image_loader(checks):
    _no_exception(checks, "exr")
    files = checks["exr_files"]
    assert sorted(files) == ["pass_depth.exr", "pass_material.exr", "pass_normal.exr"]
    assert all(same_inf and diff == 0.0 for same_inf, diff in files.values())


def test_capture_depth_in_the_ui_returns_before_rendering_and_the_pump_finishes_it(checks):
    result, renders, image_made, pending, pump_registered = checks["ui_operator"]
    assert result == ["FINISHED"] and renders == 0 and not image_made
    assert pending == 1 and pump_registered
    renders, size, near_err = checks["ui_operator_done"]
    assert renders == 1 and size == [88, 64] and near_err < 1e-6  # the render aspect, 64 px at least
