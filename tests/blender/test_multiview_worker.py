"""Multi-view texturing end to end: the installed extension, a real worker with the tiny models."""

from __future__ import annotations

import pytest

pytestmark = [pytest.mark.xdist_group("blender-multiview-worker"), pytest.mark.slow]


@pytest.fixture(scope="module")
def checks(bpy_run, addon_session):
    s = addon_session
    try:
        result = bpy_run("multiview_worker_checks.py", str(s.zip_path), s.environment, env=s.env, timeout=600)
    finally:
        s.stop_worker()
    return result


def _no_exception(checks, step):
    assert f"{step}_exception" not in checks, checks[f"{step}_exception"]


def test_background_mode_runs_the_views_in_sequence_and_bakes_before_returning(checks):
    _no_exception(checks, "sync")
    assert checks["sync_result"] == ["FINISHED"]
    assert checks["sync_views_collection"] == ["Brushwork View orbit 1", "Brushwork View orbit 2",
                                               "Brushwork View top"]
    kinds = checks["sync_recipe_kinds"]
    assert 1 <= len(kinds) <= 3 and len(checks["sync_view_images"]) == len(kinds)
    # the first view is txt2img with depth; later ones inpaint what the earlier ones did not paint
    assert [False, False, ["depth"]] in kinds
    if len(kinds) > 1:
        assert [True, True, ["depth"]] in kinds


def test_the_bake_is_on_each_slot_through_its_own_uv_map(checks):
    for name in ("Cube", "Plane"):
        image, size, uv = checks["sync_materials"][name]
        assert image and size == [64, 64] and uv == ["UVMap"]
        assert checks["sync_uv_layers"][name] == ["UVMap"]
    assert "texture(s) from" in checks["sync_summary"]


def test_a_mesh_without_uvs_is_one_clear_error(checks):
    _no_exception(checks, "no_uv")
    error = checks["no_uv_error"]
    assert error and "has no UV map to bake into" in error and error.strip().count("\n") == 0


def test_the_ui_path_returns_at_once_and_the_pump_finishes_the_chain(checks):
    _no_exception(checks, "ui")
    # nothing rendered or generated inside the operator: the first view's render waits for the pump
    assert checks["ui_renders_started_in_operator"] == 0
    assert checks["ui_renders_pending_after_return"] == 1
    assert checks["ui_active_after_return"] == 0
    assert checks["ui_images_at_return"] == 0
    assert checks["ui_renders_started"] == 2  # one render job per view
    assert checks["ui_pump_stopped_with_work_left"] == 0  # the timer carried the chain by itself
    assert checks["ui_active_at_end"] == 0
    assert checks["ui_new_view_images"] == 2
    assert "2 view(s)" in checks["ui_summary"]
    assert checks["ui_texture_size"] == [64, 32]  # Texture 64, Height 32: a non-square bake


def test_material_slot_regions_reach_the_worker_and_run(checks):
    _no_exception(checks, "regions")
    assert checks["regions_project_result"] == ["FINISHED"]
    assert checks["regions_project_regions"] == [["red bricks", 1.0], ["mossy roof", 1.0]]  # material, group
    assert checks["regions_project_mask_matches"]
    assert checks["regions_texture_result"] == ["FINISHED"]
    assert checks["regions_texture_regions"] == ["mossy roof"]  # the group, in the UV layout
    assert checks["regions_multiview_result"] == ["FINISHED"]
    # orbit 1 (from -Y) sees the region's faces and carries it; orbit 2 (from +Y) does not
    # (both orbit views look down on the top face: the vertex group's region is in each)
    assert checks["regions_multiview_views"] == [["red bricks", "mossy roof"], ["mossy roof"]]


def test_a_view_can_also_be_conditioned_on_its_normal_map(checks):
    _no_exception(checks, "normal")
    assert checks["normal_result"] == ["FINISHED"]
    assert checks["normal_control_kinds"] == ["depth", "normal"]
